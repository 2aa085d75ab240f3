"""Metrics: PSNR/SSIM against independent formulas, the Fréchet distance against its
closed form, the digit classifier on the embedded MNIST, LPIPS's missing-weights guard."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

from pi2sb_lab.data.mnist import load_mnist
from pi2sb_lab.metrics import (
    LPIPSMetric,
    MissingWeightsError,
    classifier_accuracy,
    classifier_frechet_distance,
    frechet_distance,
    lpips_backbone_file,
    psnr,
    ssim,
)
from pi2sb_lab.nets.classifier import DigitClassifier, train_digit_classifier




def _images(seed: int, shape=(4, 3, 24, 24), dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=dtype) * 2 - 1).clamp(-1, 1)


# --------------------------------------------------------------------------- PSNR


def test_psnr_matches_numpy_formula():
    x, y = _images(0), _images(1)
    got = psnr(x, y)
    assert got.shape == (4,) and got.dtype == torch.float64
    xn, yn = x.numpy(), y.numpy()
    for i in range(4):
        mse = np.mean((xn[i] - yn[i]) ** 2)
        assert abs(got[i].item() - 10 * np.log10(4.0 / mse)) < 1e-10
    # data_range=1 on [0, 1] images gives the same number
    assert torch.allclose(psnr((x + 1) / 2, (y + 1) / 2, data_range=1.0), got, rtol=0, atol=1e-10)


def test_psnr_of_identical_images_is_inf():
    x = _images(0)
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()


# --------------------------------------------------------------------------- SSIM


def _ssim_reference(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al. 2004 with scipy's 2-D convolution ('valid'), one (H, W) channel of a [0, 255] image."""
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(v):
        return scipy.signal.convolve2d(v, window, mode="valid")

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return float(np.mean(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def test_ssim_matches_independent_reference():
    x = _images(0)
    y = (x + 0.3 * _images(1)).clamp(-1, 1)
    got = ssim(x, y)
    assert got.shape == (4,)
    for i in range(4):
        # the standard SSIM: on the [0, 255] images with range 255
        x255, y255 = ((x[i] + 1) * 127.5).numpy(), ((y[i] + 1) * 127.5).numpy()
        expected = np.mean([_ssim_reference(x255[c], y255[c]) for c in range(3)])
        assert abs(got[i].item() - expected) < 1e-10


def test_ssim_identity_range_invariance_and_monotone_in_noise():
    x = load_mnist("test").images[:8].double()
    assert torch.allclose(ssim(x, x), torch.ones(8, dtype=torch.float64), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    scores = [ssim(x, (x + s * noise).clamp(-1, 1)).mean().item() for s in (0.05, 0.2, 0.5)]
    assert scores[0] > scores[1] > scores[2], f"SSIM with rising noise: {scores}"
    # the same images stored in [0, 1] or [0, 255] score the same once value_range says so
    y = (x + 0.2 * noise).clamp(-1, 1)
    assert torch.allclose(ssim((x + 1) / 2, (y + 1) / 2, value_range=(0.0, 1.0)), ssim(x, y), atol=1e-12)
    assert torch.allclose(ssim((x + 1) * 127.5, (y + 1) * 127.5, value_range=(0.0, 255.0)), ssim(x, y), atol=1e-12)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_bad_shapes_raise_naming_arguments(fn):
    x = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        fn(x, torch.zeros(2, 1, 16, 12))
    with pytest.raises(ValueError, match=r"x must be a batch of images \(B, C, H, W\)"):
        fn(x[0], x[0])
    with pytest.raises(ValueError, match="y must be a batch"):
        fn(x, x[0])
    with pytest.raises(ValueError, match=r"x must be a float image in \[-1, 1\]; got torch.uint8"):
        fn(x.to(torch.uint8), x.to(torch.uint8))  # uint8 differences would wrap around


@pytest.mark.parametrize("data_range", [0, -1, float("nan"), float("inf")])
def test_psnr_data_range_must_be_positive_and_finite(data_range):
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=f"data_range must be a finite number > 0; got {float(data_range)}"):
        psnr(x, x + 0.1, data_range=data_range)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# --------------------------------------------------------------------------- Fréchet distance


def _gaussian_feats(seed: int, n: int, d: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


def test_frechet_distance_matches_closed_form_with_sqrtm():
    a, b = _gaussian_feats(0, 500, 16, 0.0), _gaussian_feats(1, 400, 16, 0.3)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r1 = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(r1 @ s2 @ r1)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(cross)))
    got = frechet_distance(a, b)
    assert abs(got - expected) < 1e-8 * max(1.0, expected), (got, expected)
    assert abs(frechet_distance(torch.from_numpy(b), torch.from_numpy(a)) - got) < 1e-8 * max(1.0, got)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_1d_closed_form():
    a = _gaussian_feats(0, 300, 8, 0.0)
    assert abs(frechet_distance(a, a)) < 1e-9
    x, y = np.random.default_rng(2).normal(size=(2, 200, 1))
    y = 2.0 * y + 1.0
    expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2  # W2² of 1-D Gaussians
    assert abs(frechet_distance(x, y) - expected) < 1e-10


def test_frechet_distance_bad_inputs():
    with pytest.raises(ValueError, match="same feature dimension"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"feats_a must be \(N, D\)"):
        frechet_distance(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(np.zeros((5, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"feats_b holds 1 of 5 rows with NaN or inf"):
        frechet_distance(np.zeros((5, 3)), np.array([[0.0, 1, 2]] * 4 + [[np.nan, 0, 0]]))


# --------------------------------------------------------------------------- digit classifier


@pytest.fixture(scope="module")
def mnist_and_classifier():
    train, test = load_mnist("train"), load_mnist("test")
    # a short run: 2,000 of the 4,000 embedded training digits, 2 epochs
    clf = train_digit_classifier(
        train.images[:2000], train.labels[:2000], epochs=2, batch_size=32, seed=0, progress=False
    )
    return train, test, clf


def test_digit_classifier_accuracy_on_embedded_mnist(mnist_and_classifier):
    _, test, clf = mnist_and_classifier
    acc = classifier_accuracy(clf, test.images, test.labels)
    # measured 0.93 (seed 0) and 0.95 (seed 1) on the 1,000 test digits
    assert acc > 0.88, f"digit classifier test accuracy {acc:.3f}"


def test_classifier_features_and_frechet_distance(mnist_and_classifier):
    train, test, clf = mnist_and_classifier
    feats = clf.features(test.images[:64])
    assert feats.shape == (64, DigitClassifier.feature_dim)
    clean = classifier_frechet_distance(clf, test.images, train.images[:1000])
    g = torch.Generator().manual_seed(0)
    noisy_images = (test.images + 0.5 * torch.randn(test.images.shape, generator=g)).clamp(-1, 1)
    noisy = classifier_frechet_distance(clf, test.images, noisy_images)
    assert abs(classifier_frechet_distance(clf, test.images, test.images)) < 1e-6
    assert noisy > 2 * clean, f"FD test↔train {clean:.3g} should be well below test↔noisy test {noisy:.3g}"


def test_classifier_training_is_seeded(mnist_and_classifier):
    train, _, clf = mnist_and_classifier
    state = torch.get_rng_state()
    again = train_digit_classifier(train.images[:200], train.labels[:200], epochs=1, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), state), "training must not consume the global RNG"
    twin = train_digit_classifier(train.images[:200], train.labels[:200], epochs=1, seed=3, progress=False)
    for p, q in zip(again.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_classifier_rejects_wrong_image_shape(mnist_and_classifier):
    *_, clf = mnist_and_classifier
    with pytest.raises(ValueError, match=r"images must be \(N, 1, 32, 32\)"):
        clf.features(torch.zeros(2, 3, 32, 32))


# --------------------------------------------------------------------------- LPIPS


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir
    return tmp_path


@pytest.mark.parametrize(("net", "filename"), [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")])
def test_lpips_missing_weights_names_file_and_folder(empty_torch_home, net, filename):
    folder = empty_torch_home / "hub" / "checkpoints"
    assert lpips_backbone_file(net) == folder / filename
    with pytest.raises(MissingWeightsError) as info:
        LPIPSMetric(net)
    assert filename in str(info.value) and str(folder) in str(info.value)
    assert list(empty_torch_home.iterdir()) == [], "nothing may be downloaded or created"


def test_lpips_unknown_net():
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        lpips_backbone_file("resnet")


def test_lpips_runs_offline_with_a_stand_in_backbone_file(empty_torch_home):
    """A random AlexNet state_dict at the expected path: the wrapper's plumbing, not real LPIPS values."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    # classifier weights are unused by LPIPS: store them as stride-0 views so the file stays small
    state = {k: (v if k.startswith("features") else torch.zeros(1).expand(v.shape)) for k, v in state.items()}
    path = lpips_backbone_file("alex")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    metric = LPIPSMetric("alex")
    x = _images(0, (2, 3, 64, 64), torch.float32)
    y = _images(1, (2, 3, 64, 64), torch.float32)
    d_xy, d_xx = metric(x, y), metric(x, x)
    assert d_xy.shape == (2,) and (d_xy > 0).all()
    assert torch.allclose(d_xx, torch.zeros(2), atol=1e-6)
    gray = metric(x[:, :1], y[:, :1])
    assert gray.shape == (2,) and (gray > 0).all()
