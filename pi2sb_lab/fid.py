"""FID's feature network, found on disk and never downloaded, or any feature network you plug in.

FID (Heusel et al. 2017) is the Fréchet distance (``metrics.frechet_distance``) between
Gaussian fits of the 2048-d pool features of the TensorFlow Inception-v3 graph that
defined it. We take that network from ``torch-fidelity`` (its port reproduces the TF
graph, including TF 1.x's bilinear resize to 299², so its FID matches the reference
implementation's) with the weights file
``weights-inception-2015-12-05-6726825d.pth`` read from the torch hub cache
(``$TORCH_HOME/hub/checkpoints``). A missing file raises ``MissingWeightsError`` naming
it and the folder; nothing is fetched. The file is first read with
``weights_only=True``, so a file holding pickled code is refused.

:func:`load_features` also accepts ``"module:attribute"``: a callable returning an
``nn.Module`` that maps uint8 ``(N, 3, H, W)`` to ``(N, D)`` features (how the tests
run the whole path with a small local network).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .metrics import MissingWeightsError

__all__ = ["INCEPTION_FILE", "inception_file", "load_features", "extract"]

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
Features = Callable[[torch.Tensor], torch.Tensor]


def inception_file() -> Path:
    """Where the Inception weights are looked for: ``<torch hub dir>/checkpoints/weights-inception-….pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


class _Inception(nn.Module):
    def __init__(self, path: Path) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        torch.load(path, map_location="cpu", weights_only=True)  # refuse a file that is more than tensors
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)[0]


def load_features(spec: str = "inception", device: str | torch.device = "cpu") -> nn.Module:
    """The FID feature network: ``"inception"`` (see the module docstring) or ``"module:attribute"``."""
    if spec == "inception":
        path = inception_file()
        if not path.is_file():
            raise MissingWeightsError(
                f"FID needs the Inception-v3 weights file {INCEPTION_FILE!r} in the folder {path.parent!s} "
                "(torch hub cache: $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints); it is the "
                "file torch-fidelity's release v0.2.0 publishes. Copy it there; it is not downloaded automatically.")
        try:
            import torch_fidelity  # noqa: F401
        except ImportError as err:  # pragma: no cover - an optional extra
            raise ImportError("FID's Inception needs the 'torch-fidelity' package: pip install "
                              "'pi2sb-lab[metrics]'") from err
        net = _Inception(path)
    else:
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f"feature network {spec!r} must be 'inception' or 'module:attribute'")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load feature network {spec!r}: {err}") from None
        net = factory()
    return net.to(device).eval().requires_grad_(False)


@torch.no_grad()
def extract(net: nn.Module, images: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, D) float64 features of uint8 (N, 3, H, W) images, on the CPU."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"FID features take uint8 (N, 3, H, W) images; got {images.dtype} {tuple(images.shape)}")
    return net(images.to(device)).reshape(images.shape[0], -1).double().cpu()
