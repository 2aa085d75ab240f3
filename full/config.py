"""The configuration of a full-scale run: one frozen dataclass, YAML files, ``key=value`` overrides.

Defaults are the paper's: P-I2SB App. D (Adam, lr 1e-4, batch 64, 40,000 iterations),
§5 (FFHQ at 512², eq. 19 degradations with Table 4's parameters: the ``ffhq512``
preset), and its headline variant, Table 3 (e) — Cat-I2SB with the ``lq`` and ``da``
conditions. ``full/configs/`` holds one YAML file per Table 3 row (a)–(f) and per
Fig. 3b strategy; each names only what differs from these defaults::

    cfg = load_config("full/configs/f-res.yaml", ["data=/data/ffhq.zip", "total_steps=100"])

Every value is checked against the field's type and range; an unknown key or a bad
value raises :class:`ConfigError` naming the key, the value and what is allowed (the
drivers turn it into an argparse error: exit 2, no traceback).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pi2sb_lab.atomic import write_atomic
from pi2sb_lab.conditioning import CONDITIONINGS
from pi2sb_lab.degrade import PRESETS, DegradationConfig
from pi2sb_lab.families import FAMILIES
from pi2sb_lab.hashing import STRATEGIES
from pi2sb_lab.nets.unet import CONFIGS as UNET_CONFIGS
from pi2sb_lab.train_settings import TrainSettings

__all__ = ["ConfigError", "FullConfig", "CONFIG_DIR", "load_config", "parse_overrides", "save_config",
           "config_from_dict", "degradation_config"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODELS = ("bridge", "estimator", "prior")


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type or range."""


@dataclass(frozen=True)
class FullConfig:
    # --- data (P-I2SB §5: FFHQ, 70k PNGs resized to 512²)
    data: str = ""                       # a folder or a .zip of HQ faces (PNG/JPEG), searched recursively
    image_size: int = 512                # images are resized (shorter side, Lanczos) and centre-cropped to this
    num_workers: int = 4                 # DataLoader decoding processes per rank (at most the rank's CPU cores − 1)
    degradation: str = "ffhq512"         # eq. 19 preset (Table 4; photo64, face32 for small images), drawn per sample
    # eq. 19 overrides: null keeps the preset's value (pi2sb_lab.degrade.DegradationConfig's fields)
    kernel_size: typing.Optional[int] = None                 # odd blur kernel side
    sigma_range: typing.Optional[typing.List[float]] = None  # [lo, hi] blur σ, pixels
    aniso_prob: typing.Optional[float] = None                # probability of an anisotropic kernel
    scale_range: typing.Optional[typing.List[float]] = None  # [lo, hi] down-sampling factor r
    noise_range: typing.Optional[typing.List[float]] = None  # [lo, hi] noise δ on the 0–255 scale
    jpeg_range: typing.Optional[typing.List[int]] = None     # [lo, hi] JPEG quality q
    gray_prob: typing.Optional[float] = None
    flip_prob: typing.Optional[float] = None
    gray_clean: typing.Optional[bool] = None
    # --- the variant (Table 3 rows, Fig. 3b strategies)
    variant: str = "e-cat"               # a label for logs and folders
    strategy: str = "cat"                # pseudo-hashing of eq. 11/18: origin | cat | res | noise
    conditioning: str = "lq+da"          # Table 3's condition: none | lq | lq+da
    noise_level: float = 0.05            # Noise-I2SB's λ (images in [-1, 1])
    # --- what is trained: the bridge, or a helper the restorer needs at test time
    model: str = "bridge"                # bridge | estimator (y → eq. 19's vector: (c)–(f)'s da) | prior (VP
                                         # diffusion on the HQ faces: Noise-I2SB's DDIM decode, eq. 18)
    estimator_width: int = 32            # the estimator's first-layer channels (a multiple of 8)
    # --- network and bridge
    net: str = "adm512"                  # a named UNet config (pi2sb_lab.nets.unet.CONFIGS)
    use_checkpoint: bool = False         # gradient checkpointing in the U-Net (less memory, ~30 % slower)
    family: str = "i2sb"                 # the bridge: i2sb (on beta_min/beta_max) | ddbm-vp | ddbm-ve | goub
                                         # (the last three at pi2sb_lab.families' defaults)
    beta_min: float = 0.1                # I2SB's symmetric schedule
    beta_max: float = 0.3
    ot_ode: bool = False                 # train for the OT-ODE (I2SB Prop. 3.4)
    eta: float = 1.0                     # the sampler's noise dial: 1 Markovian (I2SB Alg. 2), 0 implicit (DBIM)
    # --- optimisation (P-I2SB App. D)
    batch_size: int = 64                 # global batch per optimizer step (all ranks × accumulation rounds)
    grad_accum: int = 1                  # micro-batches per step on each rank
    lr: float = 1e-4
    total_steps: int = 40_000
    lr_warmup_steps: int = 0
    grad_clip: typing.Optional[float] = None  # clip the global gradient norm (None: off)
    ema_decay: float = 0.9999            # I2SB's EMA (the paper does not state one)
    ema_rampup: float = 0.05             # EMA half-life ≤ this × steps so far (EDM's ramp-up; 0: off, the initial
                                         # network then dominates the EMA of any run much shorter than 1/(1−decay))
    bf16: typing.Optional[bool] = None   # bf16 autocast; None: on for CUDA, off on CPU
    seed: int = 0
    device: typing.Optional[str] = None  # None: cuda:LOCAL_RANK when there is a GPU, else cpu
    # --- outputs
    run_dir: str = "runs/full/e-cat"
    log_every: int = 100                 # steps between log rows / TensorBoard scalars
    checkpoint_every: int = 2_000
    keep_checkpoints: int = 2
    image_every: int = 2_000             # steps between TensorBoard image grids (LQ | EMA restored | HQ)
    image_rows: int = 4                  # rows of that grid
    image_nfe: int = 10                  # sampler steps (NFE) of that grid's restorations
    progress: bool = True                # progress bar on rank 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # NaN passes `< 0` and `> 0` tests alike; inf is never a setting
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field.name}={value!r} must be a finite number")
            if isinstance(value, int) and not -2**63 <= value < 2**63:
                raise ConfigError(f"{field.name}={value!r} does not fit a 64-bit integer")
        choices = {"model": list(MODELS), "strategy": sorted(STRATEGIES), "conditioning": list(CONDITIONINGS),
                   "net": sorted(UNET_CONFIGS), "degradation": sorted(PRESETS), "family": sorted(FAMILIES)}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not allowed; choose one of {allowed}")
        for key in ("image_size", "image_every", "image_rows", "image_nfe"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)!r} must be >= 1")
        if self.estimator_width < 8 or self.estimator_width % 8:  # its GroupNorm has 8 groups
            raise ConfigError(f"estimator_width={self.estimator_width!r} must be a positive multiple of 8")
        if self.noise_level < 0:
            raise ConfigError(f"noise_level={self.noise_level!r} must be >= 0")
        if not (self.beta_min > 0 and self.beta_max > 0):
            raise ConfigError(f"beta_min={self.beta_min!r} and beta_max={self.beta_max!r} must be > 0")
        if not 0 <= self.eta <= 1:
            raise ConfigError(f"eta={self.eta!r} must lie in [0, 1] (0: implicit sampler, 1: Markovian)")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device={self.device!r} must be null, 'cpu', 'cuda' or 'cuda:N'")
        try:  # the training loop's settings (lengths, optimizer, EMA, seed, …) are checked there, once
            self.train_settings()
        except (ValueError, TypeError) as err:
            raise ConfigError(str(err)) from None
        try:
            degradation_config(self)
        except ValueError as err:  # DegradationConfig names the field and its allowed values
            raise ConfigError(f"degradation {self.degradation!r} with the overrides given: {err}") from None
        factor = 2 ** (len(UNET_CONFIGS[self.net]["channel_mult"]) - 1)
        if self.model != "estimator" and self.image_size % factor:  # the estimator does not use the U-Net
            raise ConfigError(f"image_size={self.image_size} must be divisible by {factor} for net={self.net!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def train_settings(self, **runtime) -> TrainSettings:
        """The training loop's settings from this config's fields of the same names (checked by
        ``TrainSettings``); ``runtime``: what the driver decides at start (resume, num_workers, device, …).
        The preview grid's keys (``image_every``, ``image_rows``, ``image_nfe``) are the driver's own."""
        same = {k: getattr(self, k) for k in ("total_steps", "batch_size", "grad_accum", "lr", "lr_warmup_steps",
                                              "grad_clip", "ema_decay", "ema_rampup", "bf16", "seed", "device",
                                              "num_workers", "run_dir", "log_every", "checkpoint_every",
                                              "keep_checkpoints")}
        return TrainSettings(**{**same, "ot_ode": self.ot_ode and self.model == "bridge",
                                "progress": self.variant if self.progress else False,
                                "callback_every": math.gcd(self.log_every, self.image_every), **runtime})


DEGRADATION_KEYS = tuple(f.name for f in dataclasses.fields(DegradationConfig))


def degradation_config(cfg: FullConfig) -> DegradationConfig:
    """The preset ``cfg.degradation`` with the eq. 19 keys that ``cfg`` sets (not null); ValueError if out of range."""
    given = {k: getattr(cfg, k) for k in DEGRADATION_KEYS if getattr(cfg, k) is not None}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    return dataclasses.replace(PRESETS[cfg.degradation], **given)


_TYPES = typing.get_type_hints(FullConfig)
KEYS = tuple(f.name for f in dataclasses.fields(FullConfig))


def _coerce(key: str, value, where: str):
    """``value`` as the type of field ``key``; :class:`ConfigError` naming both otherwise."""
    kind = _TYPES[key]
    optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is list:  # an eq. 19 range: [lo, hi]
        item = typing.get_args(kind)[0]
        if not (isinstance(value, (list, tuple)) and len(value) == 2
                and all(type(v) is int or (item is float and type(v) is float) for v in value)):
            raise ConfigError(f"{where}: {key}={value!r} must be a pair [lo, hi] of {item.__name__}s"
                              f"{' or null' if optional else ''}")
        return [item(v) for v in value]
    if kind is float and type(value) is str:
        try:  # YAML 1.1 reads "1e-4" (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    ok = {bool: type(value) is bool,
          int: type(value) is int,
          float: type(value) in (int, float),
          str: type(value) is str}[kind]
    if not ok:
        allowed = f"{kind.__name__}{' or null' if optional else ''}"
        raise ConfigError(f"{where}: {key}={value!r} is a {type(value).__name__}; expected {allowed}")
    return float(value) if kind is float else value


def _unknown(key: str, where: str) -> ConfigError:
    near = difflib.get_close_matches(key, KEYS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(KEYS)}")


# Keys an older run's config.yaml or checkpoint may hold, read under their current names (nothing is lost).
RENAMED = {"grid_nfe": "image_nfe", "grid_images": "image_rows"}


def _checked(values: dict, where: str) -> dict:
    clean = {}
    for key, value in values.items():
        key = RENAMED.get(key, key)
        if key not in _TYPES:
            raise _unknown(str(key), where)
        clean[key] = _coerce(key, value, where)
    return clean


def config_from_dict(values: dict, where: str = "config") -> FullConfig:
    """A :class:`FullConfig` from a mapping of (some) keys, every value checked (e.g. a checkpoint's copy)."""
    return FullConfig(**_checked(values, where))


def parse_overrides(overrides: list[str]) -> dict:
    """``["lr=2e-4", "bf16=true", "grad_clip=null"]`` → ``{"lr": 2e-4, …}``; values are read as YAML scalars."""
    out = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value")
        key = RENAMED.get(key, key)
        if key not in _TYPES:
            raise _unknown(key, "command line")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            why = getattr(err, "problem", None) or err  # a ReaderError (a control character) has no .problem
            raise ConfigError(f"command line: {key}={text!r} is not a readable value ({why})") from None
        if _TYPES[key] is str and value is not None and not isinstance(value, str):
            value = text  # a run folder called 2024 is still a string
        out[key] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> FullConfig:
    """The defaults, updated by the YAML file at ``path`` (if any), then by ``key=value`` ``overrides``."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            named = CONFIG_DIR / f"{path}.yaml"
            if path.suffix == "" and named.is_file():  # a bare name: one of full/configs/
                path = named
            else:
                known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
                raise ConfigError(f"no config file {str(path)!r}; give a YAML path or one of {known}")
        try:
            if zipfile.is_zipfile(path):  # the data given where the config name belongs
                raise UnicodeDecodeError("zip", b"", 0, 1, "a zip file")
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path} is not a YAML text file ({err.reason}); CONFIG comes first (e.g. e-cat), "
                              "then data=PATH for the images") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of key: value; got a {type(loaded).__name__}")
        values.update(_checked(loaded or {}, str(path)))
    values.update(_checked(parse_overrides(list(overrides)), "command line"))
    return FullConfig(**values)


def save_config(config: FullConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (every key, so the file alone reproduces the run), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, yaml.safe_dump(config.as_dict(), sort_keys=False))
