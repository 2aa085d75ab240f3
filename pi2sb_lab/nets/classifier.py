"""A small digit classifier: the measuring instrument of the MNIST study (P-I2SB §4.3 label preservation).

Its label accuracy on restored digits, and the Fréchet distance on its
penultimate features (``metrics.classifier_frechet_distance``), stand in for the
papers' Inception-based metrics on MNIST; they are called what they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import predict_in_chunks, seeded

__all__ = ["DigitClassifier", "train_digit_classifier"]


class DigitClassifier(nn.Module):
    """A small CNN for ``(N, 1, 32, 32)`` digits in ``[-1, 1]`` → 10 logits.

    Three conv(3×3)+ReLU+max-pool stages (16, 32, 64 channels: 32→16→8→4), then
    a 128-unit hidden layer (the :meth:`features`) and the 10-way output.
    """

    feature_dim = 128

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"DigitClassifier needs image_size divisible by 8, got {image_size}")
        self.image_size = image_size
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (image_size // 8) ** 2, self.feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(self.feature_dim, 10)

    def _check(self, images: torch.Tensor) -> None:
        expected = (1, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be (N, {', '.join(map(str, expected))}), got {tuple(images.shape)}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 10)``."""
        self._check(images)
        return self.head(self.body(images))

    @torch.no_grad()
    def features(self, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Penultimate-layer features ``(N, 128)`` (eval mode, no grad, batched, on CPU)."""
        self._check(images)
        return predict_in_chunks(self, self.body, images, batch_size=batch_size, dtype=torch.float32,
                                 out_device="cpu")

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Predicted labels ``(N,)`` int64."""
        feats = self.features(images, batch_size=batch_size)
        return self.head(feats.to(next(self.parameters()).device)).argmax(dim=1).cpu()


def train_digit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with Adam and cross-entropy (through ``train.training_loop``);
    returns it in eval mode.

    images: ``(N, 1, S, S)`` in ``[-1, 1]``; labels: ``(N,)`` int in ``0..9``. ``epochs``
    full passes of shuffled batches (the last incomplete batch of an epoch is dropped).
    Initialisation and shuffling depend only on ``seed``.
    """
    from ..train import fit_supervised

    if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"images must be (N, 1, S, S) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if images.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} images; got {images.shape[0]}")
    device = torch.device(device)
    images, labels = images.to(device, torch.float32), labels.to(device, torch.int64)
    model = seeded(lambda: DigitClassifier(image_size=images.shape[-1]), seed, device)

    def pair_fn(rows: torch.Tensor, generator: torch.Generator):
        return images[rows], labels[rows]

    return fit_supervised(model, images.shape[0], pair_fn, lambda m, x, y: F.cross_entropy(m(x), y),
                          steps=epochs * (images.shape[0] // batch_size), batch_size=batch_size, lr=lr, seed=seed,
                          device=device, name="digit classifier", progress=progress)
