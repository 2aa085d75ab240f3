"""Tiny folders of real photographs for the image-folder and full/ tests.

scikit-image's wheel bundles a few photographs (``astronaut.png`` is a 512² face,
``chelsea``, ``coffee``, ``rocket``); square crops of them, resized small, stand in
for FFHQ and CelebA-Test. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def crops(n: int, size: int) -> list[np.ndarray]:
    """``n`` RGB uint8 ``size``² crops: photo ``k % 4``, a square window that moves with ``k``."""
    out = []
    for k in range(n):
        img = photo(PHOTOS[k % len(PHOTOS)])
        h, w = img.shape[:2]
        side = min(h, w) * (4 - (k // len(PHOTOS)) % 3) // 4  # whole, ¾ and ½ of the shorter side
        top, left = (h - side) * (k % 3) // 2, (w - side) * ((k + 1) % 3) // 2
        window = Image.fromarray(img[top:top + side, left:left + side])
        out.append(np.array(window.resize((size, size), Image.Resampling.LANCZOS)))
    return out


def photo_folder(folder: Path, n: int = 8, size: int = 32, *, jpeg_every: int = 0) -> list[Path]:
    """Write ``n`` crops as ``img_000.png`` … into ``folder`` (every ``jpeg_every``-th as a q95 JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, array in enumerate(crops(n, size)):
        jpeg = jpeg_every and k % jpeg_every == jpeg_every - 1
        path = folder / f"img_{k:03d}.{'jpg' if jpeg else 'png'}"
        Image.fromarray(array).save(path, **({"quality": 95} if jpeg else {}))
        paths.append(path)
    return paths


def tiny_features():
    """A small seeded CNN, uint8 (N, 3, H, W) → (N, 16): FID's code path without Inception's weights."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 5, stride=4)

        def forward(self, x):
            h = torch.relu(self.conv(x.float() / 127.5 - 1))
            return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Tiny()


def fake_lpips_backbone(torch_home: Path) -> Path:
    """A seeded random SqueezeNet-1.1 state_dict where torchvision looks for LPIPS' 'squeeze' trunk
    (5 MB; LPIPS' own linear layers ship inside the lpips package): LPIPS's code path, not its numbers."""
    import os

    import torch
    import torchvision

    os.environ["TORCH_HOME"] = str(torch_home)
    from pi2sb_lab.metrics import lpips_backbone_file

    path = lpips_backbone_file("squeeze")
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    return path
