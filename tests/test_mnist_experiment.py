"""The MNIST ablation path of toy/mnist.py and notebook 05: variants, pairs, restoration, metrics, bookkeeping."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from pi2sb_lab.conditioning import Conditioning
from pi2sb_lab.degrade import DEGRADATION_PARAM_DIM
from pi2sb_lab.experiments.mnist import (
    FIG3B,
    TABLE3,
    VARIANTS,
    MNISTConfig,
    TrainedVariant,
    check_variants,
    make_pair_pool,
    make_test_set,
    variant_recipe,
)
from pi2sb_lab.experiments.mnist_ablation import Ablation, VariantRecord, run_ablation
from pi2sb_lab.experiments.mnist_eval import ImageMetrics, evaluate_restored, restore_variant
from pi2sb_lab.experiments.mnist_report import markdown_table, summarize
from pi2sb_lab.nets.classifier import DigitClassifier
from pi2sb_lab.nets.denoiser import ImageDenoiser
from pi2sb_lab.parameterization import X0Param

TINY = MNISTConfig(total_steps=3, batch_size=8, lr_warmup_steps=0, train_size=64, partners=1, eval_size=16, nfe=3,
                   classifier_epochs=1, estimator_steps=2, denoiser_steps=2)


@pytest.fixture(scope="module")
def test_set():
    return make_test_set(12)


@pytest.fixture(scope="module")
def pool():
    from pi2sb_lab.data.mnist import load_mnist

    return make_pair_pool(load_mnist("train").images[:16], 2, seed=0)


def test_variants_are_table3_and_fig3b():
    flags = {n: (VARIANTS[n].strategy, VARIANTS[n].lq, VARIANTS[n].da) for n in TABLE3}
    assert flags == {"a-vanilla": ("origin", False, False), "b-lq": ("origin", True, False),
                     "c-lq-da": ("origin", True, True), "d-noise": ("noise", True, True),
                     "e-cat": ("cat", True, True), "f-res": ("res", True, True)}
    assert [VARIANTS[n].strategy for n in FIG3B] == ["origin", "res", "cat", "noise"]
    assert all(VARIANTS[n].conditioning == Conditioning() for n in FIG3B)
    assert len(VARIANTS) == 9
    assert check_variants(["res", "b-lq", "res"]) == ["res", "b-lq"]
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['g-lpips'\]; valid names: a-vanilla, b-lq"):
        check_variants(["a-vanilla", "g-lpips"])


def test_config_checks_name_the_setting():
    with pytest.raises(ValueError, match=r"total_steps must be an integer >= 1 \(optimizer steps to train\); got 0"):
        MNISTConfig(total_steps=0)
    with pytest.raises(ValueError, match=r"net must be one of \[.*'mnist-fast'.*\]; got 'huge'"):
        MNISTConfig(net="huge")
    with pytest.raises(ValueError, match=r"eval_size must lie in \[2, 1000\] .*; got 1$"):
        MNISTConfig(eval_size=1)
    with pytest.raises(ValueError, match=r"eval_size must lie in \[2, 1000\] .*embedded test split has 1000 digits"):
        MNISTConfig(eval_size=5000)
    assert MNISTConfig(eval_size=5000, mnist_root="/data").eval_size == 5000  # the full test split has 10,000
    with pytest.raises(ValueError, match=r"train_size must be None \(all 4000\) or an int in \[batch_size = 32, 4000\]"):
        MNISTConfig(train_size=10_000)
    with pytest.raises(ValueError, match="lr must be a finite number > 0; got inf"):
        MNISTConfig(lr=float("inf"))
    with pytest.raises(ValueError, match="noise_level must be a finite number > 0; got nan"):
        MNISTConfig(noise_level=float("nan"))
    with pytest.raises(TypeError, match="mnist_root must be None"):
        MNISTConfig(mnist_root=3)
    with pytest.raises(TypeError, match=r"variants must be a list of names, not one string; did you mean \['a-vanilla'\]"):
        check_variants("a-vanilla")
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]"):
        MNISTConfig(grid="cosine")


def test_test_set_is_fixed_and_pool_has_partners(test_set, pool):
    again = make_test_set(12)
    assert torch.equal(test_set.y, again.y) and torch.equal(test_set.params, again.params)
    assert test_set.params.shape == (12, DEGRADATION_PARAM_DIM) and not torch.equal(test_set.x, test_set.y)
    # each digit appears twice, with two different degradations (P-I2SB Cor. 4.2's one-to-many pairs)
    assert len(pool) == 32 and torch.equal(pool.x[:16], pool.x[16:]) and not torch.equal(pool.y[:16], pool.y[16:])
    with pytest.raises(ValueError, match=r"size must lie in \[1, 1000\]"):
        make_test_set(0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pair_fn_hashes_and_conditions_every_variant(name, pool, exact):
    variant = VARIANTS[name]
    recipe = variant_recipe(variant, TINY, ImageDenoiser())
    strategy = recipe.strategy
    rows = torch.tensor([0, 5, 20])
    x_hat, y_hat, cond = recipe.pool_pair_fn(pool.x, pool.y, pool.params)(rows, torch.Generator().manual_seed(0))
    x, y = pool.x[rows], pool.y[rows]
    c = 2 if variant.strategy == "cat" else 1
    assert x_hat.shape == y_hat.shape == (3, c, 32, 32)
    if variant.strategy == "res":
        exact((x_hat - (y - x)).abs().max().item(), what="res")
    if variant.strategy == "noise":
        assert 0.03 < (x_hat - x).std().item() < 0.07  # λ = 0.05
    if variant.strategy != "noise":  # decode inverts encode (Res up to one float32 rounding of y − x)
        exact((strategy.decode(x_hat, y) - x).abs().max().item(), tol=1e-6, what="round trip")
    net = variant_recipe(variant, TINY).backbone()
    assert (net.in_channels, net.cond_channels, net.degradation_dim) == (c, int(variant.lq), 9 * variant.da)
    assert net(x_hat, torch.rand(3), cond).shape == x_hat.shape


class _Oracle(nn.Module):
    """An x0-'network' that returns the true hashed endpoint plus a fixed offset (a parameter only for the device)."""

    def __init__(self, x_hat_true: torch.Tensor, offset: float) -> None:
        super().__init__()
        self.x_hat_true, self.offset = x_hat_true, offset
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, cond=None):
        return self.x_hat_true + self.offset


@pytest.mark.parametrize("name", ["a-vanilla", "e-cat", "f-res"])
def test_restore_with_an_oracle_is_exact_and_fig6_error_is_offset_over_sigma(name, test_set, exact):
    variant = VARIANTS[name]
    config = MNISTConfig()
    recipe = variant_recipe(variant, config)
    strategy, schedule = recipe.strategy, recipe.bridge
    x_hat_true = strategy.encode(test_set.x, test_set.y).x_hat
    for offset in (0.0, 0.1):
        oracle = TrainedVariant(variant, X0Param(_Oracle(x_hat_true, offset), schedule), recipe, [], 0.0)
        out = restore_variant(oracle, test_set.y, test_set.params, nfe=6, x_hat_true=x_hat_true, seed=0)
        assert out.step_error.shape == out.times.shape == (6,) and out.times[0] == 1.0
        expected = offset / schedule.sigma(out.times).double()
        exact((out.step_error - expected).abs().max().item(), tol=1e-5, what=f"offset {offset}")
        if offset == 0.0:  # the last step lands on pred_x0 = X̂0, and decode inverts the hashing
            exact((out.x - test_set.x.clamp(-1, 1)).abs().max().item(), tol=1e-6, what="round trip")


def test_evaluate_perfect_and_degraded_rows(test_set):
    classifier = DigitClassifier().eval()
    perfect = evaluate_restored(test_set.x, test_set, classifier)
    assert perfect.psnr == 100.0 and abs(perfect.ssim - 1) < 1e-6 and perfect.fd < 1e-6
    degraded = evaluate_restored(test_set.y, test_set, classifier)
    assert degraded.psnr < 40 and degraded.ssim < 0.95 and degraded.fd > 0
    with pytest.raises(ValueError, match=r"shaped like the test digits \(12, 1, 32, 32\)"):
        evaluate_restored(test_set.x[:3], test_set, classifier)


def _fake_ablation(accuracies: dict[str, list[float]]) -> Ablation:
    seeds = list(range(len(next(iter(accuracies.values())))))
    records = [VariantRecord(v, s, ImageMetrics(acc[s], 20.0 + s, 0.8, 5.0),
                             ImageMetrics(acc[s] + 0.01, 0, 0, 0) if VARIANTS[v].da else None,
                             torch.tensor([1.0 + s, 0.5]), torch.tensor([1.0, 0.25]), [1.0, 0.5], torch.zeros(1),
                             0.0, 0.0)
               for v, acc in accuracies.items() for s in seeds]
    return Ablation(MNISTConfig(), list(accuracies), seeds, records, [], ImageMetrics(0.7, 18.0, 0.5, 300.0), 0.97,
                    None, "cpu", 0.0)


def test_summary_means_stds_and_paired_deltas(exact):
    rows = summarize(_fake_ablation({"a-vanilla": [0.90, 0.94, 0.92], "f-res": [0.95, 0.95, 0.98]}))
    degraded, vanilla, res = rows
    assert degraded.name == "degraded" and degraded.mean["accuracy"] == 0.7 and math.isnan(degraded.std["psnr"])
    exact(abs(vanilla.mean["accuracy"] - 0.92), what="mean")
    exact(abs(vanilla.std["accuracy"] - 0.02), what="std")
    exact(abs(res.delta_accuracy[0] - 0.04), what="paired delta")
    exact(abs(res.delta_accuracy[1] - torch.tensor([0.05, 0.01, 0.06]).double().std().item()), tol=1e-7)
    exact(abs(res.accuracy_true_da[0] - 0.97), what="true da")
    exact(abs(res.first_step_error[0] - 2.0), what="first step")
    assert vanilla.delta_accuracy is None and vanilla.accuracy_true_da is None
    table = markdown_table(rows)
    assert "| degraded input (y) |" in table and "0.920 ± 0.020" in table
    assert "| (f) + lq + da, Res | res | ✓ | ✓ |" in table
    single = markdown_table(summarize(_fake_ablation({"a-vanilla": [0.9]})))
    assert "| 0.900 |" in single and "±" not in single


def test_run_ablation_end_to_end_and_resume(tmp_path):
    """Two seeds × two variants at tiny size; a second call into the same folder reloads instead of retraining."""
    with pytest.raises(ValueError, match="unknown variant"):
        run_ablation(TINY, variants=["a-vanilla", "z"])
    with pytest.raises(ValueError, match=r"seeds must be a non-empty list of ints >= 0; got \[-1\]"):
        run_ablation(TINY, seeds=[-1])
    kw = dict(seeds=[0, 1], variants=["a-vanilla", "d-noise"], run_dir=tmp_path, progress=False)
    first = run_ablation(TINY, **kw)
    assert [(r.variant, r.seed) for r in first.records] == [("a-vanilla", 0), ("d-noise", 0), ("a-vanilla", 1),
                                                             ("d-noise", 1)]
    noise = first.record("d-noise", 1)
    assert noise.metrics_true_da is not None and first.record("a-vanilla", 0).metrics_true_da is None
    assert noise.step_error.shape == (TINY.nfe,) and len(noise.losses) == TINY.total_steps
    assert noise.samples.shape == (8, 1, 32, 32) and noise.samples.abs().max() <= 1
    assert (tmp_path / "seed1" / "d-noise" / "log.jsonl").exists() and (tmp_path / "seed0" / "components.pt").exists()
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pt")}
    second = run_ablation(TINY, **kw, workers=2)  # reloads the checkpoints, in two spawned processes
    assert all(a.metrics == b.metrics and a.losses == b.losses for a, b in zip(first.records, second.records))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pt")} == written, "nothing is retrained or rewritten"
    rows = summarize(second)
    assert [r.name for r in rows] == ["degraded", "a-vanilla", "d-noise"]
    from pi2sb_lab.experiments.mnist_report import as_json, loss_figure, samples_figure, step_error_figure

    assert json.loads(json.dumps(as_json(second)))["runs"][3]["variant"] == "d-noise"
    for fig in (samples_figure(second), step_error_figure(second), loss_figure(second)):
        assert fig.axes
    with pytest.raises(ValueError, match=r"other settings \['noise_level'\]"):
        run_ablation(MNISTConfig(**{**TINY.as_dict(), "noise_level": 0.1}), **kw)


def test_resuming_into_another_variants_folder_is_refused(tmp_path, pool):
    """a-vanilla and res have networks of the same shapes: a res run resumed in a-vanilla's folder once
    loaded its weights with only a "changed settings" warning. The fingerprints now refuse it."""
    from pi2sb_lab.checkpoint import CheckpointMismatchError
    from pi2sb_lab.experiments.mnist import SeedComponents, train_variant

    config = MNISTConfig(total_steps=2, batch_size=8, lr_warmup_steps=0, train_size=64)
    parts = SeedComponents(pool, None, None, None, None, 0.0)
    folder = tmp_path / "seed0" / "res"
    vanilla = train_variant(VARIANTS["a-vanilla"], parts, config, seed=0, run_dir=folder, progress=False)
    with pytest.raises(CheckpointMismatchError) as info:
        train_variant(VARIANTS["res"], parts, config, seed=0, run_dir=folder, progress=False)
    message = str(info.value)
    assert "differ in ['variant']" in message and '"variant": "a-vanilla"' in message and '"variant": "res"' in message
    with pytest.warns(UserWarning, match="overridden"):
        reused = train_variant(VARIANTS["res"], parts, config, seed=0, run_dir=folder, progress=False,
                               ignore_fingerprint=True)
    assert reused.losses == vanilla.losses  # the explicit override really reuses the run


def test_ablation_reads_records_by_key_and_refuses_a_missing_cell():
    ablation = _fake_ablation({"a-vanilla": [0.90, 0.94], "f-res": [0.95, 0.97]})
    assert list(ablation.runs) == ["a-vanilla", "f-res"] and list(ablation.runs["f-res"]) == [0, 1]
    assert ablation.runs["f-res"][1].metrics.accuracy == 0.97 and ablation.record("a-vanilla", 1) is \
        ablation.runs["a-vanilla"][1]
    with pytest.raises(KeyError, match="no record for variant 'f-res', seed 2"):
        ablation.record("f-res", 2)
    with pytest.raises(ValueError, match=r"records lack the variant/seed cells \[\('f-res', 1\)\]"):
        Ablation(MNISTConfig(), ["a-vanilla", "f-res"], [0, 1], ablation.records[:-1], [],
                 ablation.degraded, 0.97, None, "cpu", 0.0)
