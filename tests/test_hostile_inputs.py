"""Property-based (Hypothesis): generated image files, output names and ``key=value`` overrides thrown at the
decoders, the output-name check and the config loader. Each must answer with its own error (``ImageError``,
``PreflightError``, ``ConfigError``) or a correct result — never another exception, never a silent guess.

Strategies: images of every PIL mode a face file may come in (1, L, P, RGB, RGBA, LA, CMYK, I;16, I, F)
at 1–40 pixels a side, saved as PNG, JPEG or TIFF where the mode allows, whole or cut at any byte; member
names built from path pieces (``..``, ``/``, ``~``, ``\\``, dots, letters); overrides with a valid or a
made-up key and a value of any YAML kind (ints, floats with NaN/inf, booleans, null, text, lists).
Examples are derandomized (the same ones every run) and few (EXAMPLES each), so the file runs in seconds.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from full.config import KEYS, ConfigError, FullConfig, load_config  # noqa: E402
from pi2sb_lab.data.images import ImageError, ImageFiles, decode_image  # noqa: E402
from pi2sb_lab.preflight import PreflightError, output_stems  # noqa: E402

EXAMPLES = 60
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# The formats each mode can be written in by PIL (JPEG: no alpha, no 16-bit; PNG: no CMYK, no float).
FORMATS = {"1": ["PNG", "TIFF"], "L": ["PNG", "JPEG", "TIFF"], "P": ["PNG", "TIFF"], "RGB": ["PNG", "JPEG", "TIFF"],
           "RGBA": ["PNG", "TIFF"], "LA": ["PNG"], "CMYK": ["JPEG", "TIFF"], "I;16": ["PNG", "TIFF"],
           "I": ["PNG", "TIFF"], "F": ["TIFF"]}


@st.composite
def image_files(draw):
    """(bytes, mode, format, array, whole): a generated image file, perhaps cut short."""
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "I;16":
        array = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        image = Image.fromarray(array)
    elif mode == "I":
        array = rng.integers(0, 65536, (h, w)).astype(np.int32)
        image = Image.fromarray(array)
    elif mode == "F":
        array = rng.random((h, w)).astype(np.float32)
        image = Image.fromarray(array)
    else:
        array = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        if draw(st.booleans()):
            array[..., 3] = 255  # opaque alpha: dropped, said in the notes
        image = Image.fromarray(array, "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(data) - 1))))
    return (data if cut is None else data[:cut]), mode, fmt, np.asarray(image), cut is None


@SETTINGS
@given(image_files(), st.sampled_from([None, 8, 17]))
def test_decoding_answers_with_an_image_or_an_image_error(file, size):
    data, mode, fmt, array, whole = file
    notes: list[str] = []
    try:
        image = decode_image(data, size, "generated", notes)
    except ImageError as err:
        assert "generated" in str(err)
        # Whole files are refused only where the range is not stated, or transparency would need a guess.
        assert not whole or mode in ("F", "RGBA", "LA", "P", "I") and (mode != "I" or fmt != "PNG"), (mode, fmt, err)
        return
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    if size is not None:
        assert tuple(image.shape[1:]) == (size, size)
    elif mode in ("L", "I;16") and fmt != "JPEG":  # lossless gray: the exact levels, 16 bits scaled (never clipped)
        expect = array.astype(np.float64) * (255 / 65535 if mode == "I;16" else 1)
        assert np.abs(image[0].numpy() - expect).max() <= 0.5 + 1e-9, mode
        assert mode != "I;16" or any("16-bit" in n for n in notes), notes


@SETTINGS
@given(st.lists(st.lists(st.sampled_from(["..", ".", "a", "b", "~", "~x", "", "c\\..", "face", " "]), min_size=1,
                         max_size=4), min_size=1, max_size=5),
       st.sampled_from([".png", ".jpg", ".JPEG"]), st.booleans())
def test_output_names_stay_inside_the_output_folder_and_never_collide(tmp_path_factory, pieces, ext, absolute):
    names = sorted({("/" if absolute else "") + "/".join(p) + ext for p in pieces})

    class Listing:  # what output_stems reads of an ImageFiles (a zip may hold any member name)
        root = Path("members.zip")

    listing = Listing()
    listing.names = names
    out = tmp_path_factory.mktemp("out")
    try:
        stems = output_stems(listing, "INPUT")
    except PreflightError as err:
        assert "outside the output folder" in str(err) or "written by two inputs" in str(err), err
        return
    assert len(set(stems)) == len(stems) == len(names)
    for stem in stems:
        path = (out / f"{stem}.png").resolve()
        assert out.resolve() in path.parents, (stem, path)
        assert not PurePosixPath(stem).is_absolute()


def _yaml_scalar(value) -> str:
    if isinstance(value, float):
        return ".nan" if math.isnan(value) else (".inf" if value == math.inf else "-.inf" if value == -math.inf
                                                 else repr(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    return str(value)


values = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.none(), st.text(max_size=12), st.lists(st.integers(-5, 5), max_size=3))


@SETTINGS
@given(st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), values), max_size=4))
def test_overrides_give_a_valid_config_or_a_config_error(items):
    overrides = [f"{key}={_yaml_scalar(value)}" for key, value in items]
    try:
        cfg = load_config(None, overrides)
    except ConfigError as err:
        assert str(err)
        return
    assert isinstance(cfg, FullConfig)
    for key, value in cfg.as_dict().items():  # whatever got through is a setting the drivers can use
        assert not isinstance(value, float) or math.isfinite(value), (key, value)
        assert not isinstance(value, int) or abs(value) < 2**63, (key, value)


@SETTINGS
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                 st.dictionaries(st.sampled_from(KEYS), values, max_size=3).map(
                     lambda d: "".join(f"{k}: {_yaml_scalar(v)}\n" for k, v in d.items()).encode())))
def test_a_config_file_of_any_bytes_gives_a_config_or_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "generated.yaml"
    path.write_bytes(data)
    try:
        cfg = load_config(path)
    except ConfigError as err:
        assert "generated.yaml" in str(err) or "=" in str(err), err
        return
    assert isinstance(cfg, FullConfig)


@pytest.mark.parametrize("member", ["../../escaped.png", "/abs.png", "a/../../b.png"])
def test_a_zip_member_that_escapes_is_listed_but_refused_as_an_output_name(tmp_path, member):
    import zipfile

    with zipfile.ZipFile(tmp_path / "hq.zip", "w") as z:
        z.writestr(member, b"x")
    files = ImageFiles(tmp_path / "hq.zip", 16)
    assert files.names == [member]
    with pytest.raises(PreflightError, match="outside the output folder"):
        output_stems(files, "HQ")


def test_symlinked_folders_are_followed_once_and_broken_links_listed(tmp_path):
    import os

    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    (tmp_path / "real").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "real" / "inner.png")
    os.symlink(tmp_path / "real", tmp_path / "zlinked")      # a second way into one real folder
    os.symlink(tmp_path, tmp_path / "real" / "loop")         # a link back up: must not recurse forever
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    files = ImageFiles(tmp_path, 8)
    assert files.names == ["broken.png", "face.png", "real/inner.png"], files.names
    with pytest.raises(ImageError, match="cannot read .*broken.png"):
        files.read(0)


def test_zip_resource_forks_are_not_images(tmp_path):
    import zipfile

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as z:
        z.writestr("faces/a.png", buffer.getvalue())
        z.writestr("__MACOSX/faces/._a.png", b"\x00\x05\x16\x07")
    assert ImageFiles(tmp_path / "faces.zip", 8).names == ["faces/a.png"]
