"""pi2sb_lab.data.photos: the real-photo and LFW-face folders, split by photograph / face, read by ImageFolder."""

import json

import numpy as np
import pytest
import torch

from pi2sb_lab.data.images import ImageFolder
from pi2sb_lab.data.photos import TEST_PHOTOS, write_face_set, write_photo_set


def test_photo_set_split_by_photograph_and_reproducible(tmp_path):
    manifest = write_photo_set(tmp_path / "a", tile=16, train_crops=30, seed=3)
    write_photo_set(tmp_path / "b", tile=16, train_crops=30, seed=3)
    train = sorted((tmp_path / "a" / "train").glob("*.png"))
    test = sorted((tmp_path / "a" / "test").glob("*.png"))
    assert len(train) == 30 and len(test) == manifest["test_tiles"] > 0
    photo_of = lambda p: p.stem.rsplit("_", 1)[0]  # noqa: E731
    assert not {photo_of(p) for p in train} & set(TEST_PHOTOS), "a test photograph was cropped for training"
    assert {photo_of(p) for p in test} == set(TEST_PHOTOS)
    assert set(manifest["train_photos"]).isdisjoint(manifest["test_photos"])
    for p in train[:5] + test[:5]:  # byte-identical rerun
        assert p.read_bytes() == (tmp_path / "b" / p.parent.name / p.name).read_bytes(), p.name
    data = ImageFolder(tmp_path / "a" / "train", 16)
    x = data[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and x.float().std() > 0
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["test_photos"] == list(TEST_PHOTOS)


def test_face_set_split_by_face(tmp_path):
    write_face_set(tmp_path, size=32)
    train, test = (sorted((tmp_path / s).glob("*.png")) for s in ("train", "test"))
    assert (len(train), len(test)) == (80, 20)
    assert not {p.name for p in train} & {p.name for p in test}
    face = ImageFolder(tmp_path / "test", 32)[0].numpy()
    assert np.array_equal(face[0], face[1]) and np.array_equal(face[1], face[2]), "faces are gray RGB"


@pytest.mark.parametrize("kwargs, match", [({"tile": 4}, "tile"), ({"train_crops": 0}, "train_crops"),
                                           ({"seed": -1}, "seed")])
def test_photo_set_refuses_bad_settings(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_photo_set(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir()), "nothing is written before the checks pass"
