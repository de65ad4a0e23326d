"""Scarce labels: a trial whose loop learns from a few labeled examples of its training split while
a training initializer (oplab.pretrain's greedy pre-training) sees the whole split, unlabeled
(`Trial.labeled`, `Trial.val_labeled`; Paine et al. 2014 fix the unlabeled set and shrink the labeled
one "uniformly across classes").

- The labeled subset: `labeled` examples of the train split, class-stratified (each class gets
  labeled // classes, the remainder going to classes drawn at random), drawn afresh for every seed
  from its "labels" stream (oplab.seeds), so that a verdict over seeds covers the draw of the
  labeled examples as well as the init and the batch order. A regression task: a plain random subset.
- The validation split: `val_labeled` of the labeled examples, stratified the same way, held out of
  training and evaluated beside the test split (for tuning and early stopping: in a scarce-label
  world a validation split can only come from the labeled examples).
- The pool an initializer sees: every example of the split, with the labels of the examples outside
  the labeled subset hidden (IGNORE, cross-entropy's default ignore_index, for class labels; NaN for
  regression targets), so no initializer can learn from a label the trial does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oplab import seeds
from oplab.dataset import Dataset

IGNORE = -100  # torch.nn.functional.cross_entropy's default ignore_index: a hidden class label


def stratified(y: torch.Tensor, n: int, generator: torch.Generator, classes: int | None) -> torch.Tensor:
    """Sorted indices of `n` examples of `y`: per class n // classes (the remainder to classes drawn
    at random), each class's drawn at random; `classes=None`: a plain random subset."""
    y = y.cpu()
    if not 0 <= n <= len(y):
        raise ValueError(f"cannot draw {n} labeled examples from a split of {len(y)}")
    if classes is None:
        return torch.sort(torch.randperm(len(y), generator=generator)[:n]).values
    counts = [n // classes] * classes
    for c in torch.randperm(classes, generator=generator)[: n - sum(counts)].tolist():
        counts[c] += 1
    picks = []
    for c in range(classes):
        idx = torch.nonzero(y == c).flatten()
        if counts[c] > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples in the split; a stratified draw of {n} needs "
                             f"{counts[c]}")
        picks.append(idx[torch.randperm(len(idx), generator=generator)[: counts[c]]])
    return torch.sort(torch.cat(picks)).values


@dataclass
class Scarce:
    train: Dataset  # the labeled examples the loop trains on (the test split unchanged)
    val: tuple[torch.Tensor, torch.Tensor] | None  # the held-out labeled examples, or None
    pool: tuple[torch.Tensor, torch.Tensor]  # the whole train split, labels outside the labeled subset hidden
    labeled_idx: torch.Tensor  # indices into the train split (sorted): every labeled example
    val_idx: torch.Tensor  # indices into the train split (sorted): the validation examples among them


def split(data: Dataset, labeled: int, val: int, seed: int) -> Scarce:
    """The seed's labeled subset of `data`'s train split, its validation part and the initializer's pool."""
    if not 0 <= val < labeled:
        raise ValueError(f"need 0 <= val_labeled < labeled, got val_labeled={val}, labeled={labeled}")
    classes = data.out_dim if data.task == "classification" else None
    gen = seeds.generator(seed, "labels")
    idx = stratified(data.y_train, labeled, gen, classes)
    pos = stratified(data.y_train[idx.to(data.y_train.device)], val, gen, classes)  # positions within idx
    in_val = torch.zeros(labeled, dtype=torch.bool)
    in_val[pos] = True
    train_idx, val_idx = idx[~in_val], idx[in_val]
    dev = data.x_train.device
    train = Dataset(data.name, data.x_train[train_idx.to(dev)], data.y_train[train_idx.to(dev)], data.x_test,
                    data.y_test, data.task, data.out_dim)
    held = (data.x_train[val_idx.to(dev)], data.y_train[val_idx.to(dev)]) if val else None
    hidden = torch.ones(len(data.y_train), dtype=torch.bool)
    hidden[idx] = False
    y_pool = data.y_train.clone()
    y_pool[hidden.to(dev)] = IGNORE if classes is not None else float("nan")
    return Scarce(train, held, (data.x_train, y_pool), idx, val_idx)
