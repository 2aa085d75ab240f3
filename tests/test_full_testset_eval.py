"""full/make_testset.py and full/evaluate.py: determinism, the metrics table, weights never downloaded, bad arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from full import evaluate, make_testset
from photos import crops, fake_lpips_backbone, photo_folder

ROOT = Path(__file__).resolve().parents[1]


def run_cli(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), **(env or {})}
    return subprocess.run([sys.executable, f"full/{script}", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_make_testset_is_byte_identical_on_rerun_and_independent_of_other_files(tmp_path):
    photo_folder(tmp_path / "hq", n=4, size=48, jpeg_every=2)
    (tmp_path / "hq" / "broken.png").write_bytes(b"\x89PNG not really")
    assert make_testset.main([str(tmp_path / "hq"), str(tmp_path / "a"), "--size", "32"]) == 0
    assert make_testset.main([str(tmp_path / "hq"), str(tmp_path / "b"), "--size", "32"]) == 0
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a == b and len(a) == 3 * 4 + 1
    manifest = json.loads(a["manifest.json"])
    assert manifest["skipped"] == ["broken.png"] and manifest["images"] == 4
    record = json.loads(a["params/img_001.json"])  # the eq. 19 draw of one image, within Table 4's ranges
    assert 0.1 <= record["sigma_minor"] <= record["sigma_major"] <= 10 and 0.8 <= record["scale"] <= 8
    assert 60 <= record["jpeg_quality"] <= 100 and 0 <= record["noise"] <= 20 and len(record["vector"]) == 9
    # The draw of an image depends on its name and the seed, not on which other files are there.
    (tmp_path / "hq" / "img_000.png").unlink()
    assert make_testset.main([str(tmp_path / "hq"), str(tmp_path / "c"), "--size", "32"]) == 0
    c = files_of(tmp_path / "c")
    assert c["lq/img_002.png"] == a["lq/img_002.png"] and c["params/img_003.json"] == a["params/img_003.json"]
    assert make_testset.main([str(tmp_path / "hq"), str(tmp_path / "d"), "--size", "32", "--seed", "1"]) == 0
    assert files_of(tmp_path / "d")["lq/img_002.png"] != a["lq/img_002.png"]


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A torch hub cache with a stand-in LPIPS trunk and a NIQE model fitted to bundled photos (no downloads)."""
    from pi2sb_lab.niqe import fit_model, save_model

    home = tmp_path / "torch_home"
    fake_lpips_backbone(home)
    monkeypatch.setenv("TORCH_HOME", str(home))
    niqe_file = save_model(fit_model([torch.from_numpy(c).permute(2, 0, 1) for c in crops(8, 64)], patch_size=16),
                           tmp_path / "niqe.npz")
    return home, niqe_file


def test_evaluate_scores_a_restored_folder_against_its_hq(tmp_path, weights):
    _, niqe_file = weights
    photo_folder(tmp_path / "photos", n=4, size=64)
    make_testset.main([str(tmp_path / "photos"), str(tmp_path / "set"), "--size", "64"])
    common = ["--lpips-net", "squeeze", "--fid-features", "photos:tiny_features", "--niqe-model", str(niqe_file)]
    assert evaluate.main([str(tmp_path / "set" / "hq"), "--hq", str(tmp_path / "set" / "hq"),
                          "--out", str(tmp_path / "same"), *common]) == 0
    same = json.loads((tmp_path / "same" / "metrics.json").read_text())["metrics"]
    assert same["psnr"] == float("inf") and abs(same["ssim"] - 1) < 1e-12 and abs(same["lpips"]) < 1e-6
    assert abs(same["fid"]) < 1e-6, same
    assert evaluate.main([str(tmp_path / "set" / "lq"), "--hq", str(tmp_path / "set" / "hq"), *common]) == 0
    out = tmp_path / "set" / "lq_metrics"
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    assert result["images"] == 4 and set(m) == {"psnr", "ssim", "lpips", "fid", "niqe"}
    assert 5 < m["psnr"] < 40 and 0 < m["ssim"] < 1 and m["lpips"] > 0 and m["fid"] > 0, m
    assert m["niqe"] > same["niqe"], f"LQ NIQE {m['niqe']:.3f} should exceed HQ's {same['niqe']:.3f}"
    table = (out / "metrics.md").read_text()
    assert table.splitlines()[0] == "| set | images | PSNR↑ | SSIM↑ | LPIPS↓ | FID↓ | NIQE↓ |"
    assert f"| lq | 4 | {m['psnr']:.3f} |" in table
    # No-reference mode (real-world faces): NIQE, and FID against a reference folder.
    assert evaluate.main([str(tmp_path / "set" / "lq"), "--fid-ref", str(tmp_path / "set" / "hq"),
                          "--out", str(tmp_path / "nr"), *common]) == 0
    nr = json.loads((tmp_path / "nr" / "metrics.json").read_text())
    assert set(nr["metrics"]) == {"fid", "niqe"} and np.isclose(nr["metrics"]["fid"], m["fid"])


def test_missing_weights_are_named_with_their_folder(tmp_path, monkeypatch, capsys):
    photo_folder(tmp_path / "x", n=2, size=32)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    for metric, file in (("lpips", "alexnet-owt-7be5be79.pth"), ("fid", "weights-inception-2015-12-05-6726825d.pth"),
                         ("niqe", "niqe_modelparameters.mat")):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(tmp_path / "x"), "--hq", str(tmp_path / "x"), "--metrics", metric])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and file in err, err
        assert str(tmp_path / "empty_home" / "hub" / "checkpoints") in err
    assert not (tmp_path / "x_metrics").exists()  # nothing left behind


@pytest.mark.parametrize("script, args, message", [
    ("evaluate.py", ["{x}", "--metrics", "psnr,foo"], "unknown ['foo']"),
    ("evaluate.py", ["{x}", "--metrics", "psnr"], "need --hq"),
    ("evaluate.py", ["{x}", "--metrics", "fid"], "needs --fid-ref"),
    ("evaluate.py", ["{x}/missing"], "does not exist"),
    ("evaluate.py", ["{x}", "--batch-size", "0"], "--batch-size must be >= 1"),
    ("make_testset.py", ["{x}", "{x}/out"], "must not be inside the HQ input"),
    ("make_testset.py", ["{x}/missing", "{x}/out"], "does not exist"),
    ("make_testset.py", ["{x}", "{tmp}/out", "--seed", "-1"], "--seed must be >= 0"),
    ("make_testset.py", ["{x}", "{tmp}/out", "--preset", "nope"], "invalid choice: 'nope'"),
])
def test_bad_arguments_exit_2_with_a_message_and_leave_nothing(tmp_path, script, args, message):
    photo_folder(tmp_path / "x", n=1, size=16)
    before = files_of(tmp_path)
    args = [a.format(x=tmp_path / "x", tmp=tmp_path) for a in args]
    module = evaluate if script == "evaluate.py" else make_testset
    with pytest.raises(SystemExit) as exit_info:
        module.main(args)
    assert exit_info.value.code == 2
    assert files_of(tmp_path) == before


def test_cli_help_and_a_bad_argument_without_traceback(tmp_path, capsys):
    for module in (evaluate, make_testset):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out
    proc = run_cli("make_testset.py", str(tmp_path / "nope"), str(tmp_path / "out"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
