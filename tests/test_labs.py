"""The course labs (notebooks/labs/) under nbgrader, as an instructor and a student meet them.

For every lab: the solution scores full automatic marks; the student version that `make labs`
generates holds no solution or hidden-test text, runs under the autograder without crashing it and
scores 0 on every autograded cell; a planted mistake loses exactly the points of the cells that test
it, with a message that points at the mistake. Everything runs at the small parameters of
tests/notebooks/<lab>.json (the parameters cell of the submission is edited, as a student would).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest

from lab_server import ROOT, make_command
from pi2sb_lab.labs import course

SOURCES = course.lab_sources(ROOT / "notebooks" / "labs")

# lab → (the line of the solution that is planted wrong, its wrong version, {cell that must lose its points:
# a phrase its message must contain}); every other autograded cell must keep full marks.
PLANTED = {
    "lab1": ("    mu_x1 = sigma2 / total", "    mu_x1 = -sigma2 / total",
             {"coefficients_at_the_ends": "mu_x1", "coefficients_match_prop_3_3": "wrong sign"}),
    "lab2": ("    rms = (res.trajectory - mean).square().sum(-1).mean(-1).sqrt()",
             "    rms = (res.trajectory - mean).square().sum(-1).mean(-1)",
             {"deviation_value": "root-mean-square", "deviation_shrinks_like_sqrt_c": "power 1"}),
    "lab3": ("    return y - x_hat", "    return x_hat - y",
             {"res_encode_decode": "decode must invert encode"}),
    "lab4": ("    return strategy.decode(x_hat, y)", "    return x_hat",
             {"restore_matches_pipeline": "strategy.decode"}),
}
# Lab 4's Res keeps the channels, so the planted missing decode does not crash the comparison.
PLANTED_PARAMETERS = {"lab4": {"STRATEGY": "res"}}


def small(lab: str) -> dict:
    return json.loads((ROOT / "tests" / "notebooks" / f"{SOURCES[lab].stem}.json").read_text())


def with_parameters(nb, values: dict):
    """The notebook with its parameters cell's assignments replaced (comments kept)."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    for name, value in values.items():
        hits = [i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)]
        assert len(hits) == 1, f"{name} is not assigned once in the parameters cell"
        comment = re.search(r"\s+#.*$", lines[hits[0]])
        lines[hits[0]] = f"{name} = {value!r}" + (comment.group(0) if comment else "")
    cell.source = "\n".join(lines)
    return nb


def submit(nb, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def solution_lines(text: str) -> list[str]:
    """Lines only the instructor may see: inside the solution / hidden-test markers or a written answer,
    and nowhere else in the source (the instructions may quote a line on purpose)."""
    secret, public = [], []
    for cell in jupytext.reads(text, fmt="py:percent").cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            secret += [line.strip() for line in cell.source.splitlines() if len(line.strip()) > 20]
            continue
        inside = False
        for line in cell.source.splitlines():
            if re.search(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line):
                inside = "BEGIN" in line
            elif line.strip():
                (secret if inside else public).append(line.strip())
    public_text = "\n".join(public)
    return [line for line in secret if line not in public_text]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """`make labs` into a fresh course folder: {lab: the student version}."""
    where = tmp_path_factory.mktemp("course")
    proc = subprocess.run(make_command("labs", f"COURSE={where}"), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {lab: where / "release" / lab / f"{path.stem}.ipynb" for lab, path in SOURCES.items()}
    for lab, path in out.items():
        assert f"{lab}: student version" in proc.stdout and path.exists(), proc.stdout
    return out


def test_make_labs_strips_solutions_and_hidden_tests(released):
    assert set(released) == {"lab1", "lab2", "lab3", "lab4"}
    for lab, path in released.items():
        text = path.read_text()
        hidden = solution_lines(SOURCES[lab].read_text())
        assert len(hidden) >= 5, f"{lab}: the source has too few solution lines to check ({hidden})"
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{lab}: the student version still holds solution or hidden-test text: {leaked[:5]}"
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        nb = nbformat.read(path, as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert sum(c.metadata["nbgrader"]["points"] for c in graded) >= 7, f"{lab}: too few points"
        todo = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
        assert todo and all("raise NotImplementedError()" in c.source for c in todo), f"{lab}: a blank is missing"


def full_marks(report) -> dict:
    return {c.name: c.max_score for c in report.cells if c.score is not None}


@pytest.mark.notebook
@pytest.mark.parametrize("lab", sorted(SOURCES))
def test_lab_grades(lab, released, tmp_path):
    where = tmp_path / "course"
    params = small(lab)
    solution = submit(with_parameters(jupytext.read(SOURCES[lab]), params), tmp_path / "solution.ipynb")
    blank = submit(with_parameters(nbformat.read(released[lab], as_version=4), params), tmp_path / "blank.ipynb")
    old, new, expected = PLANTED[lab]
    text = SOURCES[lab].read_text()
    assert text.count(old) == 1, f"{lab}: the planted line is not in the solution exactly once: {old!r}"
    planted_nb = jupytext.reads(text.replace(old, new), fmt="py:percent")
    planted = submit(with_parameters(planted_nb, params | PLANTED_PARAMETERS.get(lab, {})), tmp_path / "planted.ipynb")

    # the solution: every autograded cell earns its points
    report = course.grade(lab, solution, student="solution", source_dir=SOURCES[lab].parent, course=where)
    print(report.table())
    assert report.auto_score == report.auto_max > 0, report.table()
    assert all(c.feedback == "passed" for c in report.cells if c.score is not None), report.table()
    manual = [c for c in report.cells if c.score is None]
    assert lab in ("lab3", "lab4") and manual or lab in ("lab1", "lab2") and not manual, report.table()

    # the student version as released: it runs under the grader and earns nothing automatically
    report_blank = course.grade(lab, blank, student="blank", source_dir=SOURCES[lab].parent, course=where)
    print(report_blank.table())
    assert [c.name for c in report_blank.cells] == [c.name for c in report.cells]
    assert all(c.score == 0 for c in report_blank.cells), report_blank.table()
    assert all("not implemented" in c.feedback or "first" in c.feedback or "no answer" in c.feedback
               for c in report_blank.cells), report_blank.table()

    # a planted mistake: exactly the cells that test it lose their points, with a message that helps
    if lab == "lab1":  # through `make grade`, the instructor's command
        proc = subprocess.run(make_command("grade", f"LAB={lab}", f"SUBMISSION={planted}", "STUDENT=planted",
                                           f"COURSE={where}"), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        print(proc.stdout)
        table = {m.group(1): (float(m.group(2)), float(m.group(3)), m.group(4)) for m in
                 re.finditer(r"^  (\w+)\s+(\d+(?:\.\d+)?) / (\d+(?:\.\d+)?)\s+(.*)$", proc.stdout, flags=re.M)}
        assert set(table) == set(full_marks(report)), proc.stdout
        scores = {name: (score, feedback) for name, (score, _, feedback) in table.items()}
        assert "feedback page:" in proc.stdout and "autograded:" in proc.stdout
    else:
        report_planted = course.grade(lab, planted, student="planted", source_dir=SOURCES[lab].parent, course=where)
        print(report_planted.table())
        scores = {c.name: (c.score, c.feedback) for c in report_planted.cells if c.score is not None}
    for name, max_score in full_marks(report).items():
        score, feedback = scores[name]
        if name in expected:
            assert score == 0, f"{lab}: the planted mistake should cost {name} its {max_score:g} points: {feedback}"
            assert expected[name] in feedback, f"{lab}: {name}'s message does not point at the mistake: {feedback}"
        else:
            assert score == max_score, f"{lab}: the planted mistake must not cost {name} points: {feedback}"


def test_grade_refuses_bad_input_with_a_clear_message(tmp_path, capsys):
    for argv, message in ((["grade", "lab9", str(SOURCES["lab1"])], "LAB must be one of lab1, lab2, lab3, lab4"),
                          (["grade", "lab1", str(tmp_path / "missing.ipynb")], "SUBMISSION must be an existing"),
                          (["grade", "lab1", str(SOURCES["lab1"]), "--student", "a b"], "STUDENT must be"),
                          (["build", "lab7"], "LAB must be one of")):
        with pytest.raises(SystemExit) as exit_info:
            course.main(argv + ["--source", str(SOURCES["lab1"].parent), "--course", str(tmp_path / "course")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "course" / "submitted").exists(), "a refused submission must leave nothing behind"
