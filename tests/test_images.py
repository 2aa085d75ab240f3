"""Image folders and zips (pi2sb_lab.data.images): listing, decoding, resizing, skipping bad files."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from pi2sb_lab import dist
from pi2sb_lab.data.images import ImageError, ImageFiles, ImageFolder, sample_seed, save_png, to_float, to_uint8
from photos import photo_folder


def test_folder_and_zip_list_the_same_images_in_one_order(tmp_path):
    paths = photo_folder(tmp_path / "hq", n=5, size=32, jpeg_every=2)
    (tmp_path / "hq" / "sub").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "hq" / "sub" / "z.PNG")
    (tmp_path / "hq" / "notes.txt").write_text("not an image")
    archive = tmp_path / "hq.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted((tmp_path / "hq").rglob("*")):
            z.write(p, p.relative_to(tmp_path / "hq").as_posix())
    folder, zipped = ImageFiles(tmp_path / "hq", size=32), ImageFiles(archive, size=32)
    expected = sorted([p.name for p in paths] + ["sub/z.PNG"])
    assert folder.names == expected and zipped.names == expected
    for i in range(len(folder)):
        a, b = folder.read(i), zipped.read(i)
        assert a.dtype == torch.uint8 and a.shape == (3, 32, 32)
        assert torch.equal(a, b), folder.names[i]


def test_larger_images_are_resized_with_antialiasing_and_cropped_square(tmp_path):
    # A one-pixel checkerboard: shrunk by 4 with an antialiasing filter it becomes flat gray; nearest-
    # neighbour sampling would keep black or white pixels.
    board = ((np.indices((128, 96)).sum(axis=0) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, axis=2)).save(tmp_path / "board.png")
    img = ImageFiles(tmp_path, size=24).read(0)
    assert img.shape == (3, 24, 24)
    spread = img.float().std().item()
    assert abs(img.float().mean().item() - 127.5) < 3 and spread < 3, f"mean {img.float().mean():.2f}, std {spread:.2f}"
    assert ImageFiles(tmp_path, size=None).read(0).shape == (3, 128, 96)  # size=None keeps the file's size


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image folder or zip"):
        ImageFiles(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        ImageFiles(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="size must be a positive int"):
        ImageFiles(tmp_path, size=0)
    with pytest.raises(ValueError, match="no PNG/JPEG images"):
        ImageFolder(tmp_path)


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_files_are_skipped_and_counted_across_workers(tmp_path, workers):
    photo_folder(tmp_path, n=6, size=16)
    good = (tmp_path / "img_002.png").read_bytes()
    (tmp_path / "img_002.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "img_004.png").write_text("this is not a PNG")
    dataset = ImageFolder(tmp_path, size=16)
    with pytest.raises(ImageError, match="img_002.png"):
        dataset.files.read(2)
    dist.cleanup()
    loader = dist.make_loader(dataset, 3, shuffle=True, seed=0, drop_last=True, num_workers=workers)
    seen = [batch for _, batch in zip(range(4), dist.batches_from(loader))]
    assert all(b.shape == (3, 3, 16, 16) and b.dtype == torch.uint8 for b in seen)  # batches stay full
    assert dataset.skipped() == ["img_002.png", "img_004.png"]
    # the stand-in for a bad file is the next readable one, so no bad file's pixels ever reach a batch
    readable = {dataset.files.read(i).numpy().tobytes() for i in (0, 1, 3, 5)}
    assert all(im.numpy().tobytes() in readable for b in seen for im in b)


def test_float_conversion_and_png_roundtrip_are_exact(tmp_path):
    x = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    f = to_float(x[None])
    assert f.min() >= -1 and f.max() <= 1
    assert torch.equal(to_uint8(f)[0], x)
    save_png(f[0], tmp_path / "a.png")
    assert torch.equal(ImageFiles(tmp_path, size=None).read(0), x)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left


def test_sample_seed_is_stable_and_distinct():
    seeds = [sample_seed(7, i) for i in range(100)]
    assert seeds == [sample_seed(7, i) for i in range(100)]
    assert len(set(seeds)) == 100 and sample_seed(8, 0) != seeds[0]
    assert all(0 <= s < 2**63 for s in seeds)
    names = [sample_seed(7, f"img_{i:03d}.png") for i in range(100)]
    assert len(set(names + seeds)) == 200 and names[3] == sample_seed(7, "img_003.png")
