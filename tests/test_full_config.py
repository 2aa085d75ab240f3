"""full/config.py: paper defaults, one YAML per Table 3 row and Fig. 3b strategy, checked overrides."""

import dataclasses

import pytest
import yaml

from full.config import CONFIG_DIR, ConfigError, FullConfig, config_from_dict, load_config, save_config

TABLE3 = {"a-vanilla": ("origin", "none"), "b-lq": ("origin", "lq"), "c-lq-da": ("origin", "lq+da"),
          "d-noise": ("noise", "lq+da"), "e-cat": ("cat", "lq+da"), "f-res": ("res", "lq+da")}
FIG3B = {"cat": ("cat", "none"), "res": ("res", "none"), "noise": ("noise", "none")}  # + a-vanilla


def test_defaults_are_the_papers_hyper_parameters():
    cfg = FullConfig()
    # P-I2SB App. D: Adam lr 1e-4, batch 64, 40k iterations; §5: 512² and the eq. 19 / Table 4 preset.
    assert (cfg.lr, cfg.batch_size, cfg.total_steps, cfg.image_size, cfg.degradation) == \
        (1e-4, 64, 40_000, 512, "ffhq512")
    assert (cfg.net, cfg.strategy, cfg.conditioning) == ("adm512", "cat", "lq+da")


@pytest.mark.parametrize("name", sorted({**TABLE3, **FIG3B}))
def test_every_variant_file_sets_its_strategy_and_condition(name):
    cfg = load_config(name)  # a bare name finds full/configs/NAME.yaml
    assert (cfg.strategy, cfg.conditioning) == {**TABLE3, **FIG3B}[name]
    assert cfg.variant == name and cfg.run_dir == f"runs/full/{name}"
    assert load_config(CONFIG_DIR / f"{name}.yaml") == cfg


def test_overrides_are_typed_and_win_over_the_file():
    cfg = load_config("f-res", ["lr=2e-4", "grad_clip=null", "bf16=true", "total_steps=7", "run_dir=2024"])
    assert (cfg.lr, cfg.grad_clip, cfg.bf16, cfg.total_steps, cfg.run_dir) == (2e-4, None, True, 7, "2024")
    assert cfg.strategy == "res"


@pytest.mark.parametrize("override, message", [
    ("lrr=1", "unknown key 'lrr' (did you mean 'lr'?)"),
    ("lr=abc", "lr='abc' is a str; expected float"),
    ("batch_size=2.5", "batch_size=2.5 is a float; expected int"),
    ("strategy=foo", "strategy='foo' is not allowed; choose one of"),
    ("batch_size=0", "batch_size must be an integer >= 1; got 0"),
    ("bf16=maybe", "bf16='maybe' is a str; expected bool or null"),
    ("ema_decay=1", "ema_decay must be a finite number in [0, 1); got 1.0"),
    ("device=gpu", "device='gpu' must be"),
    ("image_size=100", "image_size=100 must be divisible by 64"),
    ("novalue", "must look like key=value"),
])
def test_bad_overrides_name_the_key_and_value(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("e-cat", [override])
    assert message in str(err.value)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no config file 'nope'; give a YAML path or one of"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: cat\nlearning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'learning_rate'"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_saved_config_reloads_to_the_same_run(tmp_path):
    cfg = load_config("d-noise", ["data=/x/ffhq.zip", "seed=3"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg
    assert set(yaml.safe_load(path.read_text())) == {f.name for f in dataclasses.fields(FullConfig)}
    assert config_from_dict(cfg.as_dict()) == cfg


def test_the_estimator_and_prior_configs_train_them():
    cfg = load_config("estimator")
    assert (cfg.model, cfg.variant, cfg.run_dir) == ("estimator", "estimator", "runs/full/estimator")
    assert FullConfig().model == "bridge"  # every Table 3 / Fig. 3b file trains the bridge
    assert load_config("prior").model == "prior"
    with pytest.raises(ConfigError, match="model='unet' is not allowed"):
        load_config(None, ["model=unet"])
    with pytest.raises(ConfigError, match="estimator_width=12 must be a positive multiple of 8"):
        load_config(None, ["estimator_width=12"])


def test_family_and_eta_keys_reach_the_bridge_and_the_sampler():
    """``family`` picks the bridge that full/ trains and samples (I2SB unchanged by default); ``eta`` is the
    sampler's noise dial, checked at load."""
    from full.common import recipe_of
    from pi2sb_lab.families import DDBMVPBridge, GOUBBridge
    from pi2sb_lab.schedule import SymmetricSchedule

    assert recipe_of(load_config(None)).bridge == SymmetricSchedule(0.1, 0.3) and load_config(None).eta == 1.0
    assert recipe_of(load_config(None, ["family=ddbm-vp"])).bridge == DDBMVPBridge()
    assert recipe_of(load_config(None, ["family=goub", "eta=0"])).bridge == GOUBBridge()
    with pytest.raises(ConfigError, match="family='ddbm' is not allowed"):
        load_config(None, ["family=ddbm"])
    with pytest.raises(ConfigError, match=r"eta=1\.5 must lie in \[0, 1\]"):
        load_config(None, ["eta=1.5"])
