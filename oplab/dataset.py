"""The dataset container and the registry every dataset registers into.

A leaf module (stdlib, torch and oplab.registry only): `oplab.data` (image
datasets) and `oplab.tasks` (synthetic tasks) both register builders into
`DATASETS` without importing each other; importing the package `oplab` imports
both, so every dataset is registered whenever anything in oplab is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oplab.registry import Registry

DATASETS = Registry("dataset")


class DataMissingError(RuntimeError):
    """A standard dataset is not in the data directory and download was not asked for."""


def check_finite(dataset: str, split: str, tensor: torch.Tensor) -> None:
    """Raise ValueError naming the dataset and split if a floating-point tensor holds NaN or
    infinity (integer tensors, class labels or token ids, are finite by type). Non-finite inputs
    would make every trial "diverged", indistinguishable from a real divergence."""
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(f"dataset {dataset!r}: its {split} split holds {bad} non-finite values "
                             f"(NaN or infinity) of {tensor.numel()}; fix the data before training on it")


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str  # "classification" (y: class index) or "regression" (y: float targets)
    out_dim: int  # classes, or regression outputs

    def check_finite(self) -> Dataset:
        """Raise ValueError (naming the dataset and split) if inputs or targets are not all finite."""
        for split in ("x_train", "y_train", "x_test", "y_test"):
            check_finite(self.name, split, getattr(self, split))
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        move = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Dataset(self.name, task=self.task, out_dim=self.out_dim, **move)

    def head(self, n_train: int, n_test: int) -> Dataset:
        """The first n examples of each split (0 = all)."""
        for n, x, split in ((n_train, self.x_train, "train"), (n_test, self.x_test, "test")):
            if n > len(x):
                raise ValueError(f"dataset {self.name!r} has {len(x)} {split} examples; asked for {n}")
        nt = n_train or len(self.x_train)
        ns = n_test or len(self.x_test)
        return Dataset(
            self.name, self.x_train[:nt], self.y_train[:nt], self.x_test[:ns], self.y_test[:ns],
            self.task, self.out_dim,
        )
