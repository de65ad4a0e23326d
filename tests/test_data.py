import numpy as np
import pytest
import torch

from oplab import data, dataset, models
from oplab.config import DataConfig


def test_mnist5k_split_is_stratified_and_standardized():
    d = data.load(DataConfig("mnist5k"))
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert np.bincount(d.y_train.numpy()).tolist() == [400] * 10
    assert np.bincount(d.y_test.numpy()).tolist() == [100] * 10
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-4
    # the train and test images are disjoint
    train = {tuple(r) for r in d.x_train.flatten(1)[:, ::7].numpy().round(3).tolist()}
    assert not any(tuple(r) in train for r in d.x_test.flatten(1)[:, ::7].numpy().round(3).tolist())


def test_mnist1d_and_slices():
    d = data.load(DataConfig("mnist1d", n_train=100, n_test=50))
    assert d.x_train.shape == (100, 40) and d.x_test.shape == (50, 40) and d.out_dim == 10
    full = data.load(DataConfig("mnist1d"))
    assert len(full.x_train) == 4000 and len(full.x_test) == 1000
    assert torch.equal(full.x_train[:100], d.x_train)
    with pytest.raises(ValueError, match="has 4000 train examples; asked for 5000"):
        data.load(DataConfig("mnist1d", n_train=5000))


def test_batches_cover_each_epoch_once_and_are_seeded():
    gen = torch.Generator().manual_seed(3)
    it = data.batches(10, 3, gen)
    epoch = torch.cat([next(it) for _ in range(3)])
    assert len(set(epoch.tolist())) == 9  # 3 full batches, the partial one dropped
    again = data.batches(10, 3, torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([next(again) for _ in range(3)]), epoch)
    with pytest.raises(ValueError, match="batch size 11 is larger"):
        next(data.batches(10, 11, gen))


def test_missing_standard_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataMissingError, match="--download"):
        data.check_available("mnist", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset .mnist6k.; valid: .*mnist1d, mnist5k"):
        data.load(DataConfig("mnist6k"))


def _write_idx(path, array: np.ndarray) -> None:
    """torchvision's raw MNIST format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_standard_dataset_loads_from_the_data_dir(tmp_path):
    """The real torchvision loading path, on a tiny MNIST written here (no network)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    data.check_available("mnist", tmp_path)  # present: no error
    d = data.load(DataConfig("mnist", n_train=20), data_dir=tmp_path)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    full = data.load(DataConfig("mnist"), data_dir=tmp_path)
    assert abs(float(full.x_train.mean())) < 1e-5 and abs(float(full.x_train.std()) - 1) < 1e-2
    assert d.y_train.dtype == torch.long and int(d.y_train.max()) < 10


def test_dataset_names_are_reexported_from_the_leaf_module():
    assert data.DATASETS is dataset.DATASETS
    assert data.Dataset is dataset.Dataset
    assert data.DataMissingError is dataset.DataMissingError


@pytest.mark.parametrize("name,options", [
    ("temporal_order", {"length": 20, "n_train": 8, "n_test": 4}),
    ("adding", {"length": 20, "n_train": 8, "n_test": 4}),
    ("single_unit_target", {}),
])
def test_synthetic_tasks_are_found_through_data(name, options):
    """The synthetic tasks register into the same registry as the image datasets, and
    data.load / check_available find them (oplab.data does not import oplab.tasks)."""
    assert name in data.DATASETS
    data.check_available(name)  # not a standard dataset: no error, no download
    d = data.load(DataConfig(name, options=options))
    assert isinstance(d, data.Dataset) and len(d.x_train) == options.get("n_train", 1)
    if name == "single_unit_target":
        assert float(d.y_train[0, 0]) == models.SINGLE_UNIT_TARGET


def test_check_available_looks_at_files_not_their_contents(tmp_path):
    """Checking a standard dataset before a run only looks for its files (reading 170 MB of CIFAR-10
    is each worker's job, once): empty files pass the check, and one missing file is named."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    names = ["batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))]
    for name in names[:-1]:
        (root / name).write_bytes(b"")
    with pytest.raises(data.DataMissingError, match="data_batch_5"):
        data.check_available("cifar10", tmp_path)
    (root / names[-1]).write_bytes(b"")
    data.check_available("cifar10", tmp_path)


def test_cpu_trials_share_one_copy_of_a_dataset_per_process():
    a = data.load(DataConfig("mnist5k", n_train=100, n_test=50))
    b = data.load(DataConfig("mnist5k", n_train=300))
    assert a.x_train.data_ptr() == b.x_train.data_ptr()  # slices of the same tensor, not copies
