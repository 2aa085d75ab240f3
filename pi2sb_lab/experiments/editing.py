"""SDEdit vs ODEdit with one VP prior on digits under unseen corruptions: ODEdit Table 1 on MNIST.

Per seed, one unconditional VP prior is trained on clean training digits
(``VPObjective`` through ``train.training_loop``); no model sees a corruption. The
held-out digits are corrupted by every ``corruptions.CORRUPTIONS`` entry at the chosen
severities (one fixed draw, ``TEST_DEGRADATION_SEED``), and restored by

* SDEdit at each ``t0`` (DDPM, ``max(1, round(sdedit_nfe · t0))`` steps): realism grows with t0;
* ODEdit (ODEdit Alg. 1) with each number K of Langevin updates: DDIM inversion over
  ``odedit_nfe`` uniform steps up to ``odedit_t_end``, K updates at 4 of the latents
  (step α_t = ε σ_t/σ_1, temperature T), DDIM back. K = 0 is inversion + DDIM.

Measured per corruption and severity: PSNR to the clean digit (fidelity to the truth, ODEdit
Table 1's PSNR), PSNR to the observation (faithfulness to the input), digit accuracy, and FD
on our classifier's features against the clean digits (realism, ODEdit's FID). The question
of ODEdit §4.3: at equal realism, does ODEdit keep more fidelity? :func:`fidelity_at_equal_realism`
compares each ODEdit point with the best SDEdit setting that is at least as realistic (SDEdit's Pareto
frontier; its FD is not monotone in t0, so no curve is interpolated).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from .._checks import check_real
from ..data.mnist import load_mnist
from ..diffusion import PREDICTIONS, VPObjective, VPSchedule, odedit, sdedit
from ..metrics import classifier_accuracy, classifier_frechet_distance, psnr
from ..nets import seeded
from ..nets.classifier import DigitClassifier, train_digit_classifier
from ..nets.unet import CONFIGS, UNet
from ..train import training_loop
from ..train_settings import StudyTraining
from .cells import CpuClock, check_seeds, mean_std, run_cells
from .corruptions import SEVERITIES, check_corruptions, corrupt
from .mnist import CLASSIFIER_SEED, TEST_DEGRADATION_SEED

__all__ = ["EditConfig", "SDEDIT_T0S", "ODEDIT_KS", "Setting", "settings_for", "EditTestSet", "edit_test_set",
           "train_prior", "EditMetrics", "SettingRecord", "run_setting", "EditStudy", "run_edit_study",
           "fidelity_at_equal_realism"]

SDEDIT_T0S = (0.1, 0.2, 0.3, 0.4, 0.5)
ODEDIT_KS = (0, 5, 20)


@dataclasses.dataclass(frozen=True)
class EditConfig(StudyTraining):
    """Prior: ``total_steps`` × ``batch_size`` (AdamW ``lr``, warm-up, EMA ``ema_decay``) with ``prediction``
    ("v": see ``diffusion.objective``; "eps": ODEdit's) on the VP schedule. SDEdit: ``sdedit_nfe`` steps for
    t0 = 1, proportionally fewer below. ODEdit: ``odedit_nfe`` uniform DDIM steps up to ``odedit_t_end``,
    Langevin step size ``step_size`` (ε of Alg. 1) and ``temperature`` (T). ``clip_x0`` clips x̂0 in every
    sampler. Data: ``train_size`` clean training digits (None: all), ``eval_size`` held-out digits.

    ODEdit §4.1's settings scaled to the toy: it uses 100 DDIM steps of DDPM's 1000-step chain (σ_1 ≈ 0.044),
    ε = 1e-6 and K = 100–300, so the Langevin time at the top latent, K·α_top = K·ε·σ_top/σ_1, is
    ≈ 2–7e-3. With 20 uniform steps here σ_1 ≈ 0.17, α_top ≈ 5.8 ε; ε = 3e-4 and K ∈ {5, 20} give
    K·α_top ≈ 9e-3 and 0.035: the paper's regime at K = 5, then 5× it (fewer, larger steps of the same
    Langevin time cost 20× less). T = 1/3 as in the paper."""

    net: str = "mnist-fast"
    total_steps: int = 1000              # the VP prior's training (the one network this study trains)
    batch_size: int = 32
    lr: float = 2e-3
    lr_warmup_steps: int = 20
    ema_decay: float = 0.99
    prediction: str = "v"
    vp_beta_min: float = 0.1
    vp_beta_max: float = 20.0
    clip_x0: float = 1.0
    train_size: int | None = None
    eval_size: int = 48
    classifier_epochs: int = 5
    sdedit_nfe: int = 20
    odedit_nfe: int = 20
    odedit_t_end: float = 1.0
    step_size: float = 3e-4
    temperature: float = 1 / 3

    def __post_init__(self) -> None:
        self.train_settings()  # total_steps, batch_size, lr, lr_warmup_steps, ema_decay: checked there, once
        for name in ("eval_size", "classifier_epochs", "sdedit_nfe", "odedit_nfe"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if self.eval_size < 2:
            raise ValueError(f"eval_size must be >= 2 (the Fréchet distance fits a covariance); got {self.eval_size}")
        if self.net not in CONFIGS:
            raise ValueError(f"net must be one of {sorted(CONFIGS)}; got {self.net!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {list(PREDICTIONS)}; got {self.prediction!r}")
        check_real("odedit_t_end", self.odedit_t_end, low=0, high=1, low_open=True)
        for name in ("step_size", "temperature"):  # check_real: NaN and inf are never a setting
            check_real(name, getattr(self, name), low=0)
        for name in ("vp_beta_min", "vp_beta_max", "clip_x0"):
            check_real(name, getattr(self, name), low=0, low_open=True)


    def schedule(self) -> VPSchedule:
        return VPSchedule(self.vp_beta_min, self.vp_beta_max)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One restorer: ``method`` "sdedit" with ``value`` = t0, or "odedit" with ``value`` = K Langevin updates."""

    method: str
    value: float

    @property
    def label(self) -> str:
        return f"SDEdit t0={self.value:g}" if self.method == "sdedit" else f"ODEdit K={int(self.value)}"


def settings_for(t0s: Sequence[float] = SDEDIT_T0S, ks: Sequence[int] = ODEDIT_KS) -> list[Setting]:
    if any(not 0 < t <= 1 for t in t0s) or any(type(k) is not int or k < 0 for k in ks) or not (t0s or ks):
        raise ValueError(f"t0s must lie in (0, 1] and ks be ints >= 0; got t0s={list(t0s)}, ks={list(ks)}")
    return [Setting("sdedit", float(t)) for t in t0s] + [Setting("odedit", int(k)) for k in ks]


@dataclasses.dataclass(frozen=True)
class EditTestSet:
    """Held-out digits ``x`` ``(N, 1, 32, 32)`` with ``labels``, and ``y`` ``(C·N, 1, 32, 32)``: the digits under
    each of the ``conditions`` (corruption, severity) in turn."""

    x: torch.Tensor
    labels: torch.Tensor
    y: torch.Tensor
    conditions: list[tuple[str, int]]

    def rows(self, k: int) -> slice:
        n = self.x.shape[0]
        return slice(k * n, (k + 1) * n)


def edit_test_set(corruptions: Sequence[str], severities: Sequence[int], size: int, *,
                  seed: int = TEST_DEGRADATION_SEED) -> EditTestSet:
    corruptions = check_corruptions(corruptions)
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(f"severities must be a non-empty list from {list(SEVERITIES)}; got {list(severities)}")
    data = load_mnist("test")
    if not 2 <= size <= len(data):
        raise ValueError(f"eval_size must lie in [2, {len(data)}]; got {size}")
    x, gen = data.images[:size], torch.Generator().manual_seed(seed)
    conditions = [(c, s) for c in corruptions for s in severities]
    y = torch.cat([corrupt(x, c, s, generator=gen) for c, s in conditions])
    return EditTestSet(x, data.labels[:size], y, conditions)


def train_prior(config: EditConfig, *, seed: int, device: str | torch.device = "cpu",
                run_dir: str | Path | None = None, progress: bool = True) -> torch.nn.Module:
    """The unconditional VP prior on clean training digits (EMA weights, read as ε by the samplers)."""
    images = load_mnist("train").images
    images = images if config.train_size is None else images[: config.train_size]
    settings = config.train_settings(seed=seed, device=str(device), run_dir=run_dir, resume=run_dir is not None,
                                     log_every=max(1, config.total_steps // 10), progress=progress)
    result = training_loop(settings, model=seeded(lambda: UNet.from_config(config.net), seed),
                           objective=VPObjective(config.schedule(), prediction=config.prediction), dataset=images,
                           pair_fn=lambda x, g: (x,), config={"prior": config.as_dict()})
    return result.ema.eval()


@dataclasses.dataclass(frozen=True)
class EditMetrics:
    """``psnr_clean`` (dB, to the clean digits), ``psnr_obs`` (dB, to the corrupted input), ``accuracy``, ``fd``."""

    psnr_clean: float
    psnr_obs: float
    accuracy: float
    fd: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _measure(out: torch.Tensor, test: EditTestSet, classifier: DigitClassifier) -> dict[tuple[str, int], EditMetrics]:
    metrics = {}
    for k, cond in enumerate(test.conditions):
        x_k, y_k = out[test.rows(k)], test.y[test.rows(k)]
        metrics[cond] = EditMetrics(float(psnr(x_k, test.x).clamp(max=100).mean()),
                                    float(psnr(x_k, y_k).clamp(max=100).mean()),
                                    classifier_accuracy(classifier, x_k, test.labels),
                                    classifier_frechet_distance(classifier, x_k, test.x))
    return metrics


@dataclasses.dataclass(frozen=True)
class SettingRecord:
    seed: int
    setting: Setting
    metrics: dict[tuple[str, int], EditMetrics]
    samples: torch.Tensor  # the first digit under every condition, (C, 1, 32, 32)
    nfe: int               # network calls per image
    cpu_seconds: float


@torch.no_grad()
def run_setting(*, seed: int, setting: Setting, prior_state: dict, config: EditConfig, test: EditTestSet,
                classifier: DigitClassifier, device: str | torch.device = "cpu", chunk: int = 512,
                progress: bool = False) -> SettingRecord:
    """Restore every corrupted test image with one setting of the seed's prior; measure per condition."""
    clock = CpuClock()
    prior = UNet.from_config(config.net)
    prior = VPObjective(config.schedule(), prediction=config.prediction).prepare(prior)
    prior.load_state_dict(prior_state)
    prior = prior.to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    outs, nfe = [], 0
    for start in range(0, test.y.shape[0], chunk):
        y = test.y[start:start + chunk].to(device)
        if setting.method == "sdedit":
            res = sdedit(prior, y, config.schedule(), t0=setting.value,
                         nfe=max(1, round(config.sdedit_nfe * setting.value)), generator=gen, clip_x0=config.clip_x0)
        else:
            res = odedit(prior, y, config.schedule(), nfe=config.odedit_nfe, langevin_steps=int(setting.value),
                         step_size=config.step_size, temperature=config.temperature, t_end=config.odedit_t_end,
                         grid="uniform", generator=gen, clip_x0=config.clip_x0)
        outs.append(res.x0.clamp(-1, 1).cpu())
        nfe = res.nfe
    out = torch.cat(outs)
    n = test.x.shape[0]
    return SettingRecord(seed, setting, _measure(out, test, classifier), out[::n].clone(), nfe, clock.cpu)


def _train_prior_state(**kwargs) -> tuple[dict, float]:
    clock = CpuClock()
    prior = train_prior(**kwargs)
    return {k: v.cpu() for k, v in prior.state_dict().items()}, clock.cpu


@dataclasses.dataclass(frozen=True)
class EditStudy:
    config: EditConfig
    seeds: list[int]
    settings: list[Setting]
    test: EditTestSet
    records: list[SettingRecord]
    degraded: dict[tuple[str, int], EditMetrics]
    classifier_accuracy: float
    device: str
    seconds: float
    cpu_seconds: float

    def record(self, setting: Setting, seed: int) -> SettingRecord:
        for r in self.records:
            if r.setting == setting and r.seed == seed:
                return r
        raise KeyError(f"no record for {setting.label}, seed {seed}")


def run_edit_study(config: EditConfig = EditConfig(), *, corruptions: Sequence[str], severities: Sequence[int],
                   settings: Sequence[Setting], seeds: Sequence[int] = (0, 1, 2), device: str | torch.device = "cpu",
                   run_dir: str | Path | None = None, workers: int = 1, progress: bool = True) -> EditStudy:
    """Train one prior per seed, then every setting × seed cell on all corrupted test digits."""
    seeds, settings = check_seeds(seeds), list(settings)
    clock, device = CpuClock(), torch.device(device)
    test = edit_test_set(corruptions, severities, config.eval_size)
    train = load_mnist("train")
    classifier = train_digit_classifier(train.images, train.labels, epochs=config.classifier_epochs,
                                        seed=CLASSIFIER_SEED, device=device, progress=progress).cpu()
    full_test = load_mnist("test")
    clean_accuracy = classifier_accuracy(classifier, full_test.images, full_test.labels)
    degraded = _measure(test.y, test, classifier)
    run_dir = None if run_dir is None else Path(run_dir)
    priors = run_cells(_train_prior_state, [dict(config=config, seed=s, device=device, progress=progress,
                                                 run_dir=None if run_dir is None else run_dir / f"seed{s}" / "prior")
                                            for s in seeds], workers=workers, device=device, progress=progress,
                       desc="priors")
    cells = [dict(seed=s, setting=st, prior_state=priors[i][0], config=config, test=test, classifier=classifier,
                  device=device) for i, s in enumerate(seeds) for st in settings]
    records = run_cells(run_setting, cells, workers=workers, device=device, progress=progress, desc="settings",
                        label=lambda c: f"{c['setting'].label} · seed {c['seed']}")
    parallel = workers > 1 and device.type == "cpu"
    cpu = clock.cpu + parallel * (sum(p[1] for p in priors) + sum(r.cpu_seconds for r in records))
    return EditStudy(config, seeds, settings, test, records, degraded, clean_accuracy, str(device), clock.wall, cpu)


def fidelity_at_equal_realism(study: EditStudy, seed: int, condition: tuple[str, int],
                              metric: str = "psnr_clean") -> list[tuple[int, float]]:
    """For each ODEdit K: its ``metric`` minus the best ``metric`` of any SDEdit setting at least as realistic
    (FD no larger) on the same condition and seed — SDEdit's Pareto frontier read at ODEdit's FD. > 0: ODEdit
    keeps more fidelity at equal (or better) realism; ≤ 0: some SDEdit t0 is as realistic and as faithful.
    K more realistic than every SDEdit setting have no comparison and are skipped."""
    sd = [(r.metrics[condition].fd, getattr(r.metrics[condition], metric))
          for r in study.records if r.seed == seed and r.setting.method == "sdedit"]
    out = []
    for r in study.records:
        if r.seed != seed or r.setting.method != "odedit":
            continue
        fd, value = r.metrics[condition].fd, getattr(r.metrics[condition], metric)
        rivals = [v for f, v in sd if f <= fd]
        if rivals:
            out.append((int(r.setting.value), value - max(rivals)))
    return out


def summary_over_conditions(study: EditStudy, setting: Setting, metric: str) -> tuple[float, float]:
    """Mean over conditions, then mean ± std over seeds."""
    per_seed = [sum(getattr(study.record(setting, s).metrics[c], metric) for c in study.test.conditions)
                / len(study.test.conditions) for s in study.seeds]
    return mean_std(per_seed)
