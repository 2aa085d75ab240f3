"""Tests of pi2sb_lab.degrade (P-I2SB eq. 19 / Table 4) and pi2sb_lab.operators (I2SB's fixed operators)."""

import dataclasses
import math

import pytest
import torch

from pi2sb_lab.degrade import (
    DEGRADATION_PARAM_DIM,
    DEGRADATION_PARAM_NAMES,
    PRESETS,
    DegradationConfig,
    DegradationParams,
    apply_flip,
    degrade,
    gaussian_kernels,
    get_preset,
    jpeg_roundtrip,
    sample_params,
)
from pi2sb_lab.operators import I2SB_OPERATORS, freeform_masks, get_operator

# Everything off except what a test switches on: σ = 0.1 leaves a 41-tap kernel a delta
# (neighbour weight e^-50), r = 1 resamples nothing, δ = 0 adds nothing.
IDENTITY = DegradationConfig(
    sigma_range=(0.1, 0.1), aniso_prob=0.0, scale_range=(1.0, 1.0), noise_range=(0.0, 0.0),
    jpeg_range=(100, 100), gray_prob=0.0, flip_prob=0.0,
)


def smooth_images(batch, channels, height, width, seed=0, grain=0.1):
    """Photo-like test images in [-1, 1]: smooth shapes in brightness, a gentler colour tint
    (photos carry little fine chroma, which JPEG's 4:2:0 would discard), plus fine grain."""
    g = torch.Generator().manual_seed(seed)

    def field(c, step):
        f = torch.rand(batch, c, max(1, height // step), max(1, width // step), generator=g) * 2 - 1
        return torch.nn.functional.interpolate(f, size=(height, width), mode="bicubic", align_corners=False)

    x = 0.8 * field(1, 4) + 0.2 * field(channels, 8)
    return (x + grain * (torch.rand(x.shape, generator=g) * 2 - 1)).clamp(-1, 1)


def within_binomial(count, n, p, z=4.5):
    """|count/n − p| within z standard errors of a Binomial(n, p) frequency."""
    return abs(count / n - p) <= z * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------- reproducibility


def test_same_generator_gives_identical_output_and_other_seed_differs():
    x = smooth_images(3, 3, 48, 48)
    a = degrade(x, "ffhq512", generator=torch.Generator().manual_seed(5))
    b = degrade(x, "ffhq512", generator=torch.Generator().manual_seed(5))
    c = degrade(x, "ffhq512", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.y, b.y) and torch.equal(a.x, b.x)
    assert torch.equal(a.params.as_vector(), b.params.as_vector())
    assert (a.y - c.y).abs().max() > 0.05
    assert not torch.equal(a.params.as_vector(), c.params.as_vector())


def test_replaying_params_reproduces_the_output():
    x = smooth_images(2, 3, 40, 40)
    first = degrade(x, "ffhq512", generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    sample_params(2, "ffhq512", generator=gen)  # advance past the draw, so the noise comes next
    again = degrade(x, "ffhq512", generator=gen, params=first.params)
    assert torch.equal(first.y, again.y)


# --------------------------------------------------------------------------- sampled parameters


def test_params_stay_in_table4_ranges_and_probabilities_hold():
    n = 20_000
    cfg = get_preset("ffhq512")
    p = sample_params(n, cfg, generator=torch.Generator().manual_seed(0))
    for name in ("sigma_major", "sigma_minor"):
        v = getattr(p, name)
        assert 0.1 <= v.min() and v.max() <= 10.0, name
    assert torch.all(p.sigma_major >= p.sigma_minor)
    assert 0.8 <= p.scale.min() and p.scale.max() <= 8.0
    assert 0.0 <= p.noise.min() and p.noise.max() <= 20.0
    assert p.jpeg_quality.dtype == torch.int64
    assert p.jpeg_quality.min() == 60 and p.jpeg_quality.max() == 100  # both ends are reachable
    assert torch.all((p.theta >= 0) & (p.theta < math.pi))
    iso = ~p.aniso
    assert torch.equal(p.sigma_major[iso], p.sigma_minor[iso]) and torch.all(p.theta[iso] == 0)
    # Uniform draws: the mean of r is (0.8 + 8) / 2 = 4.4 within 4.5 standard errors.
    assert abs(p.scale.mean().item() - 4.4) < 4.5 * (7.2 / math.sqrt(12)) / math.sqrt(n)
    for flag, prob in ((p.aniso, 0.5), (p.gray, 0.2), (p.flip, 0.5)):
        count = int(flag.sum())
        assert within_binomial(count, n, prob), f"frequency {count / n:.4f} vs {prob}"


def test_condition_vector_is_normalized():
    p = sample_params(4096, "ffhq512", generator=torch.Generator().manual_seed(2))
    v = p.as_vector()
    assert v.shape == (4096, DEGRADATION_PARAM_DIM) == (4096, len(DEGRADATION_PARAM_NAMES))
    assert v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1
    assert v.min(dim=0).values.max() < 0.01 and v.max(dim=0).values.min() > 0.99  # every column spans [0, 1]


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_kernels_are_normalized_and_symmetric(dtype, tol):
    sx = torch.tensor([0.1, 1.0, 4.0, 10.0, 6.0, 2.5])
    sy = torch.tensor([0.1, 1.0, 4.0, 10.0, 1.5, 0.3])
    th = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.7, 2.9])
    k = gaussian_kernels(41, sx, sy, th, dtype=dtype)
    assert k.shape == (6, 41, 41) and k.dtype == dtype
    assert (k.sum(dim=(-2, -1)) - 1).abs().max() < tol
    iso, aniso = k[:4], k[4:]
    for sym in (iso.flip(-1), iso.flip(-2), iso.transpose(-2, -1)):
        assert (iso - sym).abs().max() < tol
    assert (aniso - aniso.flip(-2, -1)).abs().max() < tol  # k[i, j] = k[-i, -j]
    assert (aniso - aniso.transpose(-2, -1)).abs().max() > 1e-3  # and genuinely not isotropic


def test_iso_kernel_matches_closed_form_gaussian(exact):
    sigma = torch.tensor([0.5, 1.7, 10.0], dtype=torch.float64)
    k = gaussian_kernels(41, sigma, sigma, torch.zeros(3), dtype=torch.float64)
    i = torch.arange(41, dtype=torch.float64) - 20
    r2 = i[:, None] ** 2 + i[None, :] ** 2
    ref = torch.exp(-r2[None] / (2 * sigma.view(-1, 1, 1) ** 2))
    ref = ref / ref.sum(dim=(-2, -1), keepdim=True)
    exact((k - ref).abs().max().item(), 1e-12)


def test_aniso_kernel_axes(exact):
    """θ = 0 puts sigma_x along columns; θ = π/2 turns it onto rows."""
    sx, sy = torch.tensor([3.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    right, zero = torch.tensor([math.pi / 2], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    i = torch.arange(21, dtype=torch.float64) - 10
    ref = torch.exp(-(i[None, :] ** 2) / (2 * 9.0) - i[:, None] ** 2 / 2.0)
    ref = ref / ref.sum()
    k0 = gaussian_kernels(21, sx, sy, zero, dtype=torch.float64)[0]
    k90 = gaussian_kernels(21, sx, sy, right, dtype=torch.float64)[0]
    exact((k0 - ref).abs().max().item(), 1e-12)
    exact((k90 - ref.T).abs().max().item(), 1e-12)


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("preset", ["ffhq512", "mnist32"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(32, 32), (48, 40), (16, 24)])
def test_output_shape_dtype_and_range(preset, channels, size):
    x = smooth_images(2, channels, *size)
    out = degrade(x, preset, generator=torch.Generator().manual_seed(0))
    assert out.y.shape == out.x.shape == x.shape
    assert out.y.dtype == x.dtype and len(out.params) == 2
    assert out.y.min() >= -1 and out.y.max() <= 1


def test_float64_in_float64_out():
    x = smooth_images(2, 3, 32, 32).double()
    assert degrade(x, "ffhq512", generator=torch.Generator().manual_seed(0)).y.dtype == torch.float64


def test_lower_jpeg_quality_gives_larger_error():
    x = smooth_images(4, 3, 64, 64)
    errors = []
    for q in (20, 50, 80, 98):
        cfg = dataclasses.replace(IDENTITY, jpeg_range=(q, q))
        y = degrade(x, cfg, generator=torch.Generator().manual_seed(0)).y
        errors.append((y - x).pow(2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_flip_returns_a_matching_pair():
    x = smooth_images(6, 3, 32, 32, grain=0.0)
    cfg = dataclasses.replace(IDENTITY, flip_prob=0.5)
    out = degrade(x, cfg, generator=torch.Generator().manual_seed(3))
    flip = out.params.flip
    assert 0 < int(flip.sum()) < 6  # this seed flips some, not all
    assert torch.equal(out.x, apply_flip(x, out.params))
    # With no degradation switched on, y must match the returned x, flipped or not (JPEG-100 error
    # only), and be far from the unflipped input where the pair was flipped.
    matched = (out.y - out.x).abs().mean().item()
    assert matched < 0.03, matched
    assert (out.y[flip] - x[flip]).abs().mean() > 5 * matched


def test_gray_applies_to_y_and_optionally_to_x():
    x = smooth_images(2, 3, 32, 32)
    x = smooth_images(2, 3, 32, 32, grain=0.0)
    y = degrade(x, dataclasses.replace(IDENTITY, gray_prob=1.0), generator=torch.Generator()).y
    assert (y[:, 0] - y[:, 1]).abs().max() == 0 and (y[:, 1] - y[:, 2]).abs().max() == 0
    both = degrade(x, dataclasses.replace(IDENTITY, gray_prob=1.0, gray_clean=True), generator=torch.Generator())
    assert (both.x[:, 0] - both.x[:, 2]).abs().max() < 1e-6
    assert (both.y - both.x).abs().mean() < 0.02


def test_blur_noise_and_downsampling_each_degrade():
    x = smooth_images(2, 3, 64, 64)

    def mse(**change):
        y = degrade(x, dataclasses.replace(IDENTITY, **change), generator=torch.Generator().manual_seed(0)).y
        return (y - x).pow(2).mean().item()

    baseline = mse()  # JPEG-100 and 8-bit rounding alone
    for change in ({"sigma_range": (3.0, 3.0)}, {"noise_range": (15.0, 15.0)}, {"scale_range": (6.0, 6.0)}):
        err = mse(**change)
        assert err > 3 * baseline, f"{change}: mse {err:.2e} vs baseline {baseline:.2e}"


def fixed_params(aniso, sigma_major, sigma_minor, theta, scale, quality, noise=0.0):
    one = lambda v, dtype=torch.float32: torch.tensor([v], dtype=dtype)  # noqa: E731
    return DegradationParams(
        aniso=one(aniso, torch.bool), sigma_major=one(sigma_major), sigma_minor=one(sigma_minor),
        theta=one(theta), scale=one(scale), noise=one(noise), jpeg_quality=one(quality, torch.int64),
        gray=one(False, torch.bool), flip=one(False, torch.bool), config=PRESETS["ffhq512"],
    )


@pytest.mark.parametrize("sigma, scale", [(0.4, 0.8), (3.0, 2.7), (9.0, 7.5)])
def test_iso_fast_path_equals_the_general_kernel_path(sigma, scale):
    """Iso kernels take a fused separable route; an "aniso" kernel with equal axes takes the FFT route."""
    x = smooth_images(1, 3, 64, 48)
    ys = [degrade(x, "ffhq512", generator=torch.Generator().manual_seed(0),
                  params=fixed_params(aniso, sigma, sigma, 0.0, scale, 85, noise=5.0)).y for aniso in (False, True)]
    # Equal up to float round-off, which can tip the 8-bit rounding of a rare pixel by one level.
    assert (ys[0] - ys[1]).abs().max() <= 2 / 255 + 1e-6
    assert (ys[0] - ys[1]).abs().mean() < 1e-3


@pytest.mark.parametrize("size", [(64, 48), (16, 24)])  # (16, 24): too small to mirror a 41-tap kernel
def test_fused_iso_blur_resize_equals_fft_blur_then_resize(size, exact):
    from pi2sb_lab._degrade_ops import blur_resize_isotropic, filter2d_per_sample, resize_bilinear

    x = smooth_images(1, 3, *size).double()
    errors = []  # exact() fails on any NaN among them (max(worst, err) would drop it)
    for sigma in (0.3, 2.0, 10.0):
        s = torch.tensor([sigma], dtype=torch.float64)
        k = gaussian_kernels(41, s, s, torch.zeros(1), dtype=torch.float64)
        for out in ((size[0] // 5, size[1] // 5), (int(size[0] / 0.8), int(size[1] / 0.8)), size):
            ref = resize_bilinear(filter2d_per_sample(x, k), out)
            errors.append((blur_resize_isotropic(x, sigma, 41, out) - ref).abs().max().item())
    exact(errors, 1e-10)


@pytest.mark.parametrize("aniso, s1, s2, theta, scale, q", [(True, 6.0, 2.0, 0.5, 3.3, 90), (False, 2.0, 2.0, 0.0, 0.8, 70)])
def test_matches_an_independent_opencv_pipeline(aniso, s1, s2, theta, scale, q):
    """GFPGAN's steps written with cv2 (filter2D, INTER_LINEAR resizes, imencode) give the same y."""
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    x = smooth_images(1, 3, 64, 64, grain=0.02)
    y = degrade(x, "ffhq512", generator=torch.Generator(), params=fixed_params(aniso, s1, s2, theta, scale, q)).y

    img = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() + 1) / 2)
    rows, cols = np.mgrid[-20:21, -20:21].astype(np.float64)
    u = cols * np.cos(theta) + rows * np.sin(theta)
    v = -cols * np.sin(theta) + rows * np.cos(theta)
    kernel = np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    lq = cv2.filter2D(img, -1, (kernel / kernel.sum()).astype(np.float32))
    lq = cv2.resize(lq, (int(64 // scale), int(64 // scale)), interpolation=cv2.INTER_LINEAR)
    _, buf = cv2.imencode(".jpg", (lq[:, :, ::-1] * 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
    lq = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    lq = cv2.resize(lq, (64, 64), interpolation=cv2.INTER_LINEAR)
    ref = torch.from_numpy(lq.copy()).permute(2, 0, 1) * 2 - 1

    # On the 0–255 scale: ours ends with GFPGAN's rounding to 8 bits (≤ 0.5), and two libjpeg
    # builds may round a DCT coefficient differently (≈ 1 level); a convention slip costs ≫ 2.
    diff = (y[0] - ref).abs() * 127.5
    assert diff.mean() < 0.5 and diff.max() < 2.0, (diff.mean().item(), diff.max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    x = smooth_images(2, 3, 48, 48).cuda()
    out = degrade(x, "ffhq512", generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.y.device.type == "cuda" and out.y.shape == x.shape


# --------------------------------------------------------------------------- I2SB operators


@pytest.mark.parametrize("name", sorted(I2SB_OPERATORS))
def test_i2sb_operators_keep_shape(name):
    x = smooth_images(2, 3, 64, 64)
    out = get_operator(name)(x, generator=torch.Generator().manual_seed(0))
    assert out.y.shape == x.shape and out.y.min() >= -1 and out.y.max() <= 1
    assert (out.mask is not None) == name.startswith("inpaint")
    assert (out.y - x).abs().mean() > 1e-3  # it did something


def test_linear_operators_preserve_constants():
    x = torch.full((1, 3, 64, 64), 0.3)
    for name in ("sr4x-pool", "sr4x-bicubic", "blur-uni", "blur-gauss"):
        assert (I2SB_OPERATORS[name](x).y - 0.3).abs().max() < 1e-6, name


def test_inpainting_masks_cover_the_intended_fraction():
    x = smooth_images(1, 3, 64, 64)
    center = get_operator("inpaint-center")(x)
    assert center.mask.mean().item() == 0.25
    assert torch.all(center.y[center.mask.expand_as(x) == 1] == 1.0)  # holes are white, as in I2SB
    gen = torch.Generator().manual_seed(0)
    for lo, hi in ((0.1, 0.2), (0.2, 0.3)):
        masks = freeform_masks(10, 64, 64, (lo, hi), generator=gen)
        frac = masks.mean(dim=(1, 2, 3))
        assert masks.shape == (10, 1, 64, 64)
        assert torch.all((frac >= lo) & (frac <= hi)), frac
        assert frac.std() > 0.005  # targets vary across masks
    a = freeform_masks(2, 64, 64, generator=torch.Generator().manual_seed(9))
    b = freeform_masks(2, 64, 64, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_jpeg5_is_worse_than_jpeg10():
    x = smooth_images(2, 3, 64, 64)
    err = {q: (jpeg_roundtrip(x, q) - x).pow(2).mean().item() for q in (5, 10)}
    assert err[5] > err[10], err


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(1, 3, 8, 8) * 255, r"\[-1, 1\]"),
        (torch.full((1, 3, 8, 8), 1.01), r"\[-1, 1\]"),
        (torch.full((1, 3, 8, 8), -1.5), r"\[-1, 1\]"),
        (torch.zeros(1, 2, 8, 8), "1 or 3 channels"),
        (torch.zeros(1, 4, 8, 8), "1 or 3 channels"),
        (torch.zeros(3, 8, 8), "4-D"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "floating-point"),
    ],
)
def test_bad_images_raise(x, match):
    with pytest.raises(ValueError, match=match):
        degrade(x, generator=torch.Generator())
    with pytest.raises(ValueError, match=match):
        get_operator("blur-uni")(x)


def test_tiny_excess_is_tolerated():
    x = torch.full((1, 3, 8, 8), 1.0 + 1e-5)
    assert degrade(x, IDENTITY, generator=torch.Generator()).y.shape == x.shape


@pytest.mark.parametrize("field", ["sigma_range", "scale_range", "noise_range", "jpeg_range"])
def test_inverted_range_raises(field):
    lo, hi = getattr(DegradationConfig(), field)
    with pytest.raises(ValueError, match=f"{field}.*lo <= hi"):
        DegradationConfig(**{field: (hi, lo)})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"jpeg_range": (0, 50)}, r"jpeg_range\[0\] must be a finite number in \[1, 100\]; got 0"),
        ({"jpeg_range": (60.5, 90)}, "jpeg_range must hold integer"),
        ({"sigma_range": (0.0, 3.0)}, r"sigma_range\[0\] must be a finite number in \(0, 100\]; got 0.0"),
        ({"sigma_range": (0.1, float("inf"))}, r"sigma_range\[1\] must be a finite number in \(0, 100\]; got inf"),
        ({"noise_range": 20.0}, r"noise_range must be a \(lo, hi\) pair"),
        ({"noise_range": (0.0, float("nan"))}, r"noise_range\[1\] must be a finite number in \[0, 255\]; got nan"),
        ({"scale_range": (0.01, 0.01)}, r"scale_range\[0\] must be a finite number in \[0.25, 64\]; got 0.01"),
        ({"gray_prob": 1.5}, r"gray_prob \(a probability\) must be a finite number in \[0, 1\]; got 1.5"),
        ({"flip_prob": float("nan")}, r"flip_prob \(a probability\) must be a finite number in \[0, 1\]; got nan"),
        ({"kernel_size": 40}, r"kernel_size must be an odd integer in \[1, 255\]; got 40"),
    ],
)
def test_out_of_bounds_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DegradationConfig(**kwargs)


@pytest.mark.parametrize("call, error, match", [
    (lambda: degrade(torch.zeros(2, 1, 8, 8), None), TypeError,
     r"config must be a DegradationConfig or a preset name, one of "
     r"\['face32', 'ffhq512', 'mnist32', 'photo64'\]; got None"),
    (lambda: degrade(torch.zeros(2, 1, 8, 8), "mnist32", generator=0), TypeError,
     r"generator must be a torch.Generator or None .*got 0 \(int\)"),
    (lambda: degrade(torch.zeros(2, 1, 8, 0), "mnist32"), ValueError,
     r"x must have height and width >= 1; got shape \(2, 1, 8, 0\)"),
    (lambda: sample_params(-1), ValueError, "batch must be an integer >= 0 .*; got -1"),
    (lambda: sample_params(2.5), TypeError, r"batch must be an integer >= 0 .*; got 2.5 \(float\)"),
    (lambda: sample_params(2, config=3), TypeError, "config must be a DegradationConfig or a preset name"),
    (lambda: degrade(torch.zeros(2, 1, 8, 8), params="mnist32"), TypeError, "params must be a DegradationParams"),
], ids=["config-None", "generator-0", "zero-width", "batch-negative", "batch-float", "config-int", "params-str"])
def test_bad_arguments_name_themselves(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_tiny_images_degrade():
    """The smallest images (1×1, 1×5, 2×3) go through eq. 19 with both presets, shape kept."""
    for size in ((1, 1), (1, 5), (2, 3)):
        for preset, c in (("ffhq512", 3), ("mnist32", 1)):
            y = degrade(torch.zeros(2, c, *size), preset, generator=torch.Generator().manual_seed(0)).y
            assert y.shape == (2, c, *size) and bool(torch.isfinite(y).all())


def test_operator_and_replay_shape_errors():
    with pytest.raises(ValueError, match="divisible by 4"):
        get_operator("sr4x-pool")(torch.zeros(1, 3, 30, 32))
    params = sample_params(3, generator=torch.Generator())
    with pytest.raises(ValueError, match="params must describe 2 samples"):
        degrade(torch.zeros(2, 3, 16, 16), params=params)
    with pytest.raises(ValueError, match="coverage"):
        freeform_masks(1, 16, 16, (0.3, 0.2))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="ffhq512.*mnist32"):
        get_preset("celeba")
    with pytest.raises(ValueError, match="unknown degradation preset"):
        degrade(torch.zeros(1, 3, 8, 8), "nope")
    with pytest.raises(ValueError, match="inpaint-center.*sr4x-pool"):
        get_operator("sr8x")
    assert set(PRESETS) >= {"ffhq512", "mnist32"}


# --------------------------------------------------------------------------- batched JPEG (GPU codec)


def test_batched_jpeg_on_the_cpu_is_the_per_image_codec():
    from pi2sb_lab._degrade_ops import jpeg_roundtrip_many

    images = [smooth_images(1, 3, h, w, seed=h) for h, w in ((16, 24), (40, 40), (9, 13))]
    out = jpeg_roundtrip_many(images, [60, 95, 60], codec="auto")
    assert all(torch.equal(o, jpeg_roundtrip(im, q)) for o, im, q in zip(out, images, (60, 95, 60)))
    with pytest.raises(ValueError, match="codec must be 'auto', 'cpu' or 'cuda'; got 'gpu'"):
        jpeg_roundtrip_many(images, [60] * 3, codec="gpu")


def test_degrade_jpeg_codec_choice_does_not_change_cpu_results():
    x = smooth_images(4, 3, 48, 48)
    runs = [degrade(x, "ffhq512", generator=torch.Generator().manual_seed(5), jpeg_codec=c).y for c in ("auto", "cpu")]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_codec_is_close_to_libjpeg():
    x = smooth_images(4, 3, 64, 64).cuda()
    ys = [degrade(x, "ffhq512", generator=torch.Generator(device="cuda").manual_seed(0), jpeg_codec=c).y
          for c in ("cuda", "cpu")]
    diff = (ys[0] - ys[1]).abs() * 127.5  # nvjpeg and libjpeg round DCT coefficients differently
    assert diff.mean() < 1.0, f"mean difference {diff.mean().item():.3f} levels of 255"


# --------------------------------------------------------------------------- CPU fast paths (bench/degrade.py)


@pytest.mark.parametrize("channels", [3, 1])
def test_blur_resize_fft_is_bitwise_blur_then_resize_on_both_routes(monkeypatch, channels):
    """Batched chunks (small images) and the one-sample route (512² on a CPU: a reused padded buffer,
    the last inverse pass only for the rows the resize reads) give exactly what blurring the whole
    image (in the same chunks) and resizing it gives: r ≈ 5 and 2 (rows pruned), r = 1 (the resize
    returns its input), r < 1 (enlarging), unequal axes."""
    from pi2sb_lab import _blur as ops

    x = smooth_images(5, channels, 64, 48)
    s = torch.tensor([4.0, 0.3, 9.0, 2.0, 6.0])
    kernels = gaussian_kernels(41, s, s / 2, torch.tensor([0.3, 0.0, 2.0, 1.0, 2.9]))
    index, sizes = [4, 0, 2, 1, 3], [(12, 9), (64, 48), (80, 60), (25, 40), (32, 24)]
    # (MKL rounds a one-channel transform of 5 samples at once slightly differently from 5 single ones)
    whole = ops.filter2d_per_sample(x[index], kernels)
    one_by_one = [ops.filter2d_per_sample(x[[i]], kernels[[j]])[0] for j, i in enumerate(index)]
    batched = ops.blur_resize_fft(x, index, kernels, sizes)
    monkeypatch.setattr(ops, "FFT_CHUNK_BYTES", 1)  # as at 512²: one sample per transform
    single = ops.blur_resize_fft(x, index, kernels, sizes)
    for j, size in enumerate(sizes):
        assert batched[j].shape == single[j].shape == (1, channels, *size)
        assert torch.equal(batched[j], ops.resize_bilinear(whole[j][None], size))
        assert torch.equal(single[j], ops.resize_bilinear(one_by_one[j][None], size))
    assert single[1].data_ptr() != ops.blur_resize_fft(x, [0], kernels[1:2], [(64, 48)])[0].data_ptr()


@pytest.mark.parametrize("n_in, n_out", [(512, 64), (512, 200), (512, 73), (64, 25), (48, 12), (10, 3)])
def test_bilinear_source_rows_are_every_row_the_resize_reads(n_in, n_out):
    from pi2sb_lab._blur import bilinear_source_rows, resize_bilinear

    rows = bilinear_source_rows(n_in, n_out)
    assert rows is not None and rows.numel() < n_in
    x = smooth_images(1, 3, n_in, 8)
    poisoned = torch.full_like(x, float("nan"))  # a row read even with weight 0 would spread NaN
    poisoned[:, :, rows] = x[:, :, rows]
    assert torch.equal(resize_bilinear(poisoned, (n_out, 8)), resize_bilinear(x, (n_out, 8)))
    # r = 1, enlarging, and r = 1.5 (rows ⌊1.5i + ¼⌋ and the next cover them all) read every row
    assert bilinear_source_rows(n_in, n_in) is None and bilinear_source_rows(n_in, 2 * n_in) is None
    assert bilinear_source_rows(512, 341) is None


@pytest.mark.parametrize("shape, p", [((3, 64, 48), 20), ((1, 30, 30), 5), ((3, 16, 24), 20), ((3, 5, 7), 3)])
def test_mirror_padding_into_a_buffer_equals_pad_reflect(shape, p):
    from pi2sb_lab._blur import _pad_reflect_into, pad_reflect

    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    C, H, W = shape
    buffer = torch.full((C, H + 2 * p + 4, W + 2 * p + 3), 7.0)
    _pad_reflect_into(buffer, x, p)
    assert torch.equal(buffer[:, : H + 2 * p, : W + 2 * p], pad_reflect(x[None], p)[0])
    assert (buffer[:, H + 2 * p :] == 7).all() and (buffer[:, :, W + 2 * p :] == 7).all()  # margin untouched


def test_banded_products_luma_and_rounding_into_a_batch_match_the_plain_ones():
    from pi2sb_lab._blur import _banded_matmul, blur_resize_matrix
    from pi2sb_lab._degrade_ops import LUMA_WEIGHTS, luma, quantize_8bit_, quantize_8bit_into

    g = torch.Generator().manual_seed(2)
    taps = torch.exp(-0.5 * (torch.arange(-20, 21, dtype=torch.float64) / 3.0) ** 2)
    for n_in, n_out in ((512, 341), (512, 100), (64, 50), (40, 50)):
        m = blur_resize_matrix(n_in, n_out, taps / taps.sum()).float()
        x = torch.rand(1, 3, n_in, 16, generator=g) * 2 - 1
        assert m.count_nonzero() < m.numel() / 2 or n_in < 100  # a band, not a dense matrix
        # the same sums in another order: equal up to float32 rounding
        torch.testing.assert_close(_banded_matmul(m, x), m @ x, rtol=0, atol=1e-6)
    y = (torch.rand(2, 3, 32, 24, generator=g) * 2.2 - 1.1).contiguous(memory_format=torch.channels_last)
    w = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    assert torch.equal(luma(y), (y * w).sum(dim=1, keepdim=True))
    # rounding into a batch skips the clamp: bitwise the same for values within float rounding of
    # [-1, 1] (what resizing 8-bit levels gives), the ends and their neighbouring floats included
    ends = torch.tensor([-1.0, 1.0]).repeat(2 * 3 * 32 * 12)
    y = (y.clamp(-1, 1) + ends.view(2, 3, 32, 24) * (torch.rand(2, 3, 32, 24, generator=g) < 0.2) * 3e-7)
    assert (y.abs() > 1).any()
    out = torch.empty(2, 3, 32, 24)
    quantize_8bit_into(out, y.clone(memory_format=torch.channels_last))
    assert torch.equal(out, quantize_8bit_(y.clone())) and out.is_contiguous()
    wide = torch.rand(1, 3, 100, 2048, generator=g) * 2 - 1  # rounded in bands of 16 rows
    out = torch.empty_like(wide)
    quantize_8bit_into(out, wide.clone(memory_format=torch.channels_last))
    assert torch.equal(out, quantize_8bit_(wide.clone()))
