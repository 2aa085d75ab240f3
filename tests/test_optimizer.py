"""train.build_optimizer: the fastest AdamW the build runs, recorded in config.json, the same arithmetic."""

import json

import pytest
import torch
from torch import nn

from pi2sb_lab import train
from pi2sb_lab.schedule import SymmetricSchedule


def _params(seed: int = 0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(5, 3, generator=g)), nn.Parameter(torch.randn(7, generator=g))]


def test_fused_is_chosen_on_the_cpu_when_the_build_has_it():
    optimizer, kind = train.build_optimizer(_params(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0,
                                            device=torch.device("cpu"))
    assert kind == "fused", f"torch {torch.__version__} runs fused AdamW on the CPU, yet {kind!r} was chosen"
    assert optimizer.param_groups[0]["fused"] is True


@pytest.mark.parametrize("missing, expected", [({"fused"}, "foreach"), ({"fused", "foreach"}, "single-tensor")])
def test_a_build_without_the_faster_kinds_falls_back(monkeypatch, missing, expected):
    from pi2sb_lab import optimizer as optimizer_module

    real = optimizer_module._runs
    monkeypatch.setattr(optimizer_module, "_runs", lambda kind, device, dtype: kind not in missing and real(kind, device, dtype))
    optimizer, kind = train.build_optimizer(_params(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0,
                                            device=torch.device("cpu"))
    group = optimizer.param_groups[0]
    assert kind == expected and not group["fused"] and group["foreach"] is (expected == "foreach")


def test_every_kind_takes_the_same_steps_up_to_float_rounding():
    """Ten AdamW steps with weight decay from the same start and gradients: each kind against a
    float64 reference written from the algorithm (Loshchilov & Hutter's decoupled decay)."""
    lr, (b1, b2), wd, eps = 1e-2, (0.8, 0.95), 0.1, 1e-8
    grads = [[torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * k + i)) for i, p in enumerate(_params())]
             for k in range(10)]
    ref = [p.detach().double() for p in _params()]
    m = [torch.zeros_like(p) for p in ref]
    v = [torch.zeros_like(p) for p in ref]
    for k, step_grads in enumerate(grads, start=1):
        for p, g, mk, vk in zip(ref, step_grads, m, v):
            g = g.double()
            p.mul_(1 - lr * wd)
            mk.mul_(b1).add_((1 - b1) * g)
            vk.mul_(b2).add_((1 - b2) * g * g)
            p.sub_(lr * (mk / (1 - b1 ** k)) / ((vk / (1 - b2 ** k)).sqrt() + eps))
    for kind in train.OPTIMIZER_KINDS:
        params = _params()
        flags = {"fused": dict(fused=True), "foreach": dict(foreach=True), "single-tensor": dict(foreach=False)}[kind]
        optimizer = torch.optim.AdamW(params, lr=lr, betas=(b1, b2), weight_decay=wd, eps=eps, **flags)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            optimizer.step()
        err = max((p.detach().double() - r).abs().max().item() for p, r in zip(params, ref))
        assert err < 1e-5, f"{kind}: {err:.2e} from the float64 reference"


class _Net(nn.Module):
    """The smallest model training_loop takes: ``model(x_t, t, cond=None)``."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x_t, t, cond=None):
        return self.lin(x_t)


def test_the_run_records_its_optimizer_in_config_json(tmp_path):
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    train.training_loop(model=_Net(), dataset=x, schedule=SymmetricSchedule(), pair_fn=lambda x, g: (x, x.flip(1), None),
                        total_steps=2, batch_size=8, progress=False, run_dir=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    expected = train.build_optimizer(list(_Net().parameters()), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0,
                                     device=torch.device("cpu"))[1]
    assert config["optimizer"] == expected == "fused", config.get("optimizer")
