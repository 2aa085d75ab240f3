"""Image folders and zips of faces (FFHQ, CelebA-Test, real-world sets) as uint8 tensors.

P-I2SB §5 trains on FFHQ's 70,000 PNGs resized to 512×512 and tests on 512² faces.
Everything here stays in uint8 (what the files hold); the float [-1, 1] convention
starts after the batch reaches the training process (:func:`to_float`).

* :class:`ImageFiles` lists the images of a folder (recursively) or of a ``.zip``
  (PNG/JPEG, sorted by relative name, so every rank and every rerun sees one order)
  and decodes one at a time: RGB, ``(3, S, S)`` uint8, resized so the shorter side is
  ``size`` (Lanczos, which antialiases when shrinking) and centre-cropped to a square.
* :class:`ImageFolder` is the training dataset over it for ``dist.make_loader``
  (decoding runs in the DataLoader workers; each rank reads only its shard). A file
  that cannot be decoded (unreadable, truncated, not an image) is never fatal: the
  next readable file in the listing stands in for it, and the failure is recorded in
  a flag array in shared memory, so the main process can count what workers skipped.
* :func:`sample_seed` gives each image its own seed, so that a draw made per image
  (a test set's degradations) does not depend on batch size, shard or order.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from ..atomic import atomic_path

__all__ = ["EXTENSIONS", "ImageError", "ImageFiles", "ImageFolder", "decode_image", "sample_seed", "to_float",
           "to_uint8", "save_png"]

EXTENSIONS = (".png", ".jpg", ".jpeg")


class ImageError(RuntimeError):
    """A file that cannot be decoded as an image (unreadable, truncated, or another format)."""


def decode_image(data: bytes, size: int | None, name: str = "image", notes: list[str] | None = None) -> torch.Tensor:
    """Decode PNG/JPEG bytes to ``(3, S, S)`` uint8 RGB; ``size=None`` keeps the file's own size (then
    ``(3, H, W)``). Raises :class:`ImageError` naming ``name`` for anything PIL cannot fully decode, and for
    what it could only decode by guessing (see :func:`as_rgb8`); every conversion made is appended to
    ``notes`` (when given) as one short phrase, so a caller can say what it did."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode here: a truncated file fails now, not later in a batch
            rgb, said = as_rgb8(img)
    except ImageError as err:
        raise ImageError(f"cannot decode {name}: {err}") from None
    except UnidentifiedImageError:  # PIL's message names an in-memory buffer's address: say what it means
        raise ImageError(f"cannot decode {name}: not an image PIL can identify (PNG/JPEG expected)") from None
    except Exception as err:  # OSError (truncated), SyntaxError, DecompressionBombError …
        raise ImageError(f"cannot decode {name}: {type(err).__name__}: {err}") from err
    if notes is not None:
        notes.extend(said)
    if size is not None:
        rgb = _square(rgb, size)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


# Modes PIL's convert("RGB") maps exactly (gray is copied to the three channels, a palette looked up).
_EXACT = {"RGB": None, "L": "gray, copied to 3 channels", "1": "1-bit, copied to 3 channels",
          "P": "palette colours looked up", "YCbCr": "YCbCr converted to RGB"}


def as_rgb8(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """An 8-bit RGB image and what was done to get it; :class:`ImageError` rather than a guess.

    * EXIF orientation (a phone's portrait photo) is applied, so the face stands upright;
    * 16-bit gray (PNG ``I;16``) is scaled by 255/65535 — ``convert("RGB")`` clips it, and a
      16-bit face becomes all white;
    * an alpha channel that is fully opaque is dropped; one with transparent pixels is refused
      (which background to flatten onto is the user's choice, not ours);
    * CMYK is converted with PIL's formula (no colour profile: said in the note);
    * float (``F``) and 32-bit integer images are refused: the file does not say their range.
    """
    notes = []
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        notes.append(f"turned upright by its EXIF orientation {orientation}")
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _EXACT:
        if _EXACT[mode]:
            notes.append(_EXACT[mode])
        return (img if mode == "RGB" else img.convert("RGB")), notes
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):  # PNG keeps 16-bit gray as I;16 or I
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(f"16-bit gray image with values outside [0, 65535] (min {values.min()}, "
                             f"max {values.max()})")
        notes.append("16-bit gray scaled to 8 bits (×255/65535)")
        gray = np.round(values * (255 / 65535)).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), notes
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            raise ImageError(f"{mode} image with {int((alpha < 255).sum())} (semi-)transparent pixel(s): flatten it "
                             "onto the background you want first (no background is guessed here)")
        notes.append(f"{mode} with an opaque alpha channel: alpha dropped")
        return img.convert("RGB"), notes
    if mode == "CMYK":
        notes.append("CMYK converted to RGB by PIL's formula (any colour profile ignored)")
        return img.convert("RGB"), notes
    raise ImageError(f"image mode {mode!r} ({img.format}) is not decoded here: its value range is not stated "
                     "in the file; save it as an 8- or 16-bit PNG or a JPEG")


def _square(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (Lanczos: antialiased when shrinking a 1024² FFHQ face), then the centre square."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(new, Image.Resampling.LANCZOS)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in [0, 255] → float32 in [-1, 1] (the project's image convention)."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded to nearest (what an 8-bit file stores)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write one ``(3, H, W)`` uint8 or [-1, 1] float image as PNG, atomically (temp file + rename), so an
    interrupted run never leaves a half-written file that a rerun would take as finished."""
    path = Path(path)
    if image.is_floating_point():
        image = to_uint8(image)
    array = image.cpu().permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(tmp, format="PNG")


def sample_seed(seed: int, key: int | str) -> int:
    """A 63-bit seed for the image ``key`` (an index, or a file name: then adding or removing other files
    leaves its seed alone) of a run seeded ``seed`` (SHA-256 of a name, NumPy's SeedSequence mixing)."""
    if isinstance(key, str):
        digest = hashlib.sha256(key.encode()).digest()
        words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]
    else:
        words = [int(key)]
    return int(np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0]) >> 1


class ImageFiles:
    """The PNG/JPEG files of a folder (searched recursively) or a ``.zip``, sorted by relative name.

    ``names[i]`` is the path relative to ``root`` ("/"-separated); :meth:`read` decodes
    image ``i`` to ``(3, size, size)`` uint8 (``size=None``: the file's own size).
    A zip is opened lazily in each process (DataLoader workers get their own handle).

    On purpose: symlinked sub-folders are followed (each real folder once, so a link loop
    ends), and a broken link with an image's name is listed (reading it fails and the
    caller skips it with the reason, instead of it vanishing); macOS's ``__MACOSX/``
    resource forks in zips are not images and are left out. :attr:`notes` maps a name to
    what decoding it converted (16-bit, CMYK, EXIF rotation …), for the files read in this
    process. Names are kept as they are: a caller that builds output paths from them checks
    them with ``pi2sb_lab.preflight.output_stems`` (``../`` members, ``a.png`` + ``a.jpg``).
    """

    def __init__(self, root: str | os.PathLike, size: int | None = 512) -> None:
        self.root = Path(root)
        if size is not None and (type(size) is not int or size < 1):
            raise ValueError(f"size must be a positive int or None; got {size!r}")
        self.size = size
        self.notes: dict[str, str] = {}
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        if self.root.is_dir():
            self.is_zip = False
            self.names = sorted(_walk_images(self.root))
        elif self.root.is_file() and zipfile.is_zipfile(self.root):
            self.is_zip = True
            with zipfile.ZipFile(self.root) as z:
                self.names = sorted(n for n in z.namelist()
                                    if not n.endswith("/") and Path(n).suffix.lower() in EXTENSIONS
                                    and not n.startswith("__MACOSX/"))
        elif self.root.exists():
            raise ValueError(f"{self.root} is neither a folder nor a zip file of images")
        else:
            raise FileNotFoundError(f"no image folder or zip at {self.root}")

    def __len__(self) -> int:
        return len(self.names)

    def _bytes(self, i: int) -> bytes:
        if not self.is_zip:
            return (self.root / self.names[i]).read_bytes()
        if self._zip is None or self._zip_pid != os.getpid():  # a forked worker must not share the parent's handle
            self._zip, self._zip_pid = zipfile.ZipFile(self.root), os.getpid()
        return self._zip.read(self.names[i])

    def read(self, i: int) -> torch.Tensor:
        """Image ``i`` as uint8 ``(3, size, size)``; :class:`ImageError` naming the file when it is unreadable."""
        name = f"{self.root}/{self.names[i]}" if not self.is_zip else f"{self.names[i]} in {self.root}"
        try:
            data = self._bytes(i)
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise ImageError(f"cannot read {name}: {type(err).__name__}: {err}") from err
        notes: list[str] = []
        image = decode_image(data, self.size, name, notes)
        if notes:
            self.notes[self.names[i]] = "; ".join(notes)
        return image

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"], state["_zip_pid"] = None, -1  # open handles do not pickle (spawned workers)
        return state


def _walk_images(root: Path) -> list[str]:
    """Relative names of the image files under ``root``, following symlinked folders once each."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree (or two links to one folder): walked once
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        for file in files:
            if Path(file).suffix.lower() in EXTENSIONS:
                found.append(Path(folder, file).relative_to(root).as_posix())
    return found


class ImageFolder(Dataset):
    """Training images for ``dist.make_loader``: item ``i`` is ``(3, size, size)`` uint8.

    An unreadable item is replaced by the next readable one in the listing (so every
    batch stays full and the run goes on), and flagged in :attr:`skipped_flags`, a
    shared-memory tensor that worker processes write and the training process reads:
    :meth:`skipped` lists the bad files seen so far, on this rank.
    """

    def __init__(self, root: str | os.PathLike, size: int = 512) -> None:
        self.files = ImageFiles(root, size)
        if len(self.files) == 0:
            raise ValueError(f"no PNG/JPEG images ({', '.join(EXTENSIONS)}) in {root}")
        self.skipped_flags = torch.zeros(len(self.files), dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self.files)
        for k in range(n):
            j = (i + k) % n
            if self.skipped_flags[j]:
                continue
            try:
                return self.files.read(j)
            except ImageError:
                self.skipped_flags[j] = 1
        raise ImageError(f"none of the {n} files in {self.files.root} can be decoded")

    def skipped(self) -> list[str]:
        """Relative names of the files found unreadable so far (by any worker of this process)."""
        return [self.files.names[j] for j in self.skipped_flags.nonzero().flatten().tolist()]
