"""Real photographs that ship inside installed packages, as image folders for ``full/`` (nothing downloaded).

scikit-image's data folder and scikit-learn's sample images hold a few dozen real
photographs (a face, a cat, coffee, a rocket, a motorcycle, the Hubble deep field, a
retina, textures, text pages, …). They are too few and too large for training as
they are, so :func:`write_photo_set` cuts them into small tiles:

* ``train/``: random crops of the TRAINING photographs at random scales (a crop of
  side ``tile·2^u`` pixels, ``u`` uniform up to the photo's size, resized to ``tile``
  with Lanczos, which antialiases), mirrored with probability ½; PNG files that
  ``full/train.py data=…/train`` reads like any user folder.
* ``test/``: a fixed grid of non-overlapping tiles of the TEST photographs, each
  photo first halved (so the tiles show as much of a scene as the average training
  crop). The split is by photograph: no test photo is ever cropped for training.

Test photographs (:data:`TEST_PHOTOS`): scikit-image's ``chelsea`` (a cat),
``coffee`` and ``camera`` (the cameraman, gray), scikit-learn's ``china`` (a temple).
Every other photograph in :data:`PHOTOS` is for training. Gray photos become gray
RGB.

:func:`write_face_set` does the same for scikit-image's ``lfw_subset``: its first
100 images are real 25×25 gray faces from Labeled Faces in the Wild (the other 100
are non-face crops, not used). Faces 0–79 train, 80–99 test (split by face),
resized to ``size`` with Lanczos.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_path

__all__ = ["PHOTOS", "TEST_PHOTOS", "FACES_TRAIN", "FACES_TEST", "photo", "write_photo_set", "write_face_set"]

# name → loader; RGB photographs and gray ones (textures, scans, astronomy). Synthetic images
# (checkerboards, logos, binary silhouettes, phantom) are left out: they are not photographs.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "hubble_deep_field", "retina", "camera",
          "coins", "moon", "page", "text", "grass", "gravel", "brick", "cell", "china", "flower")
TEST_PHOTOS = ("chelsea", "coffee", "camera", "china")
FACES_TRAIN, FACES_TEST = range(0, 80), range(80, 100)


def photo(name: str) -> np.ndarray:
    """Photograph ``name`` of :data:`PHOTOS` as ``(H, W, 3)`` uint8 RGB."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; valid names: {list(PHOTOS)}")
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _check(name: str, value, low: int) -> None:
    if type(value) is not int or value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {value!r}")


def _random_crop(image: np.ndarray, tile: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    largest = min(h, w)
    side = int(round(tile * 2 ** rng.uniform(0, math.log2(largest / tile)))) if largest > tile else largest
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(image[top:top + side, left:left + side])
    if side != tile:
        crop = crop.resize((tile, tile), Image.Resampling.LANCZOS)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def _tiles(image: np.ndarray, tile: int) -> list[tuple[int, int, np.ndarray]]:
    """The photo halved (Lanczos), cut into a grid of non-overlapping ``tile``² tiles (the borders dropped)."""
    h, w = image.shape[:2]
    half = np.asarray(Image.fromarray(image).resize((w // 2, h // 2), Image.Resampling.LANCZOS))
    rows, cols = half.shape[0] // tile, half.shape[1] // tile
    return [(r, c, half[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]) for r in range(rows) for c in range(cols)]


def _save(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def write_photo_set(out: str | os.PathLike, *, tile: int = 64, train_crops: int = 4000, seed: int = 0) -> dict:
    """Write ``out/train/`` (``train_crops`` random crops of the training photos) and ``out/test/`` (the test
    photos' tiles), and ``out/manifest.json`` naming the split; returns the manifest. Same seed, same files."""
    _check("tile", tile, 8)
    _check("train_crops", train_crops, 1)
    _check("seed", seed, 0)
    out = Path(out)
    train_names = [n for n in PHOTOS if n not in TEST_PHOTOS]
    images = {n: photo(n) for n in PHOTOS}
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(train_crops):
        name = train_names[k % len(train_names)]  # every training photo equally often, whatever its size
        _save(_random_crop(images[name], tile, rng), out / "train" / f"{name}_{k:05d}.png")
    test = []
    for name in TEST_PHOTOS:
        for r, c, array in _tiles(images[name], tile):
            _save(array, out / "test" / f"{name}_r{r}c{c}.png")
            test.append(f"{name}_r{r}c{c}")
    manifest = {"tile": tile, "seed": seed, "train_photos": train_names, "test_photos": list(TEST_PHOTOS),
                "train_crops": train_crops, "test_tiles": len(test)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def write_face_set(out: str | os.PathLike, *, size: int = 32) -> dict:
    """Write scikit-image's 100 LFW faces as ``size``² gray-RGB PNGs: ``out/train/`` faces 0–79 and
    ``out/test/`` faces 80–99, and ``out/manifest.json``; returns the manifest."""
    _check("size", size, 8)
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]  # float in [0, 1], (100, 25, 25); 100–199 are not faces
    out = Path(out)
    for split, indices in (("train", FACES_TRAIN), ("test", FACES_TEST)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in indices:
            gray = Image.fromarray(np.round(faces[i] * 255).astype(np.uint8)).resize((size, size),
                                                                                    Image.Resampling.LANCZOS)
            _save(np.repeat(np.asarray(gray)[..., None], 3, axis=2), out / split / f"face_{i:03d}.png")
    manifest = {"size": size, "source": "skimage.data.lfw_subset()[:100]", "train_faces": "0-79",
                "test_faces": "80-99"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
