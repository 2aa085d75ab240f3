"""The course labs with nbgrader: build the student versions, autograde a submission, report per cell.

    python -m pi2sb_lab.labs.course build [LAB ...]                    (make labs)
    python -m pi2sb_lab.labs.course grade LAB SUBMISSION [--student ID] (make grade LAB=… SUBMISSION=…)

The sources are the jupytext solution notebooks ``notebooks/labs/labN_*.py`` with nbgrader's
markers (``### BEGIN SOLUTION`` … ``### END SOLUTION``, ``### BEGIN HIDDEN TESTS`` …, graded cells
with points in their ``nbgrader`` metadata). ``build`` converts each into an nbgrader course folder
(``build/labs``: ``source/labN/``, ``release/labN/`` — the student versions —, ``gradebook.db``) and
runs nbgrader's generate-assignment step, which strips the solutions and hidden tests and records
the graded cells. ``grade`` copies a submission (``.ipynb``, or a jupytext ``.py``) to
``submitted/STUDENT/labN/``, runs nbgrader's autograde (the locked and test cells come back from the
gradebook, hidden tests included, then the notebook runs top to bottom) and feedback steps, and
prints each graded cell's points with the message of the assertion that failed in it.
Released and graded notebooks are build outputs; only the ``.py`` sources are committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

__all__ = ["LAB_SOURCES", "COURSE_DIR", "lab_sources", "build", "grade", "GradeReport", "CellGrade", "main"]

LAB_SOURCES = Path("notebooks/labs")
COURSE_DIR = Path("build/labs")
COURSE_ID = "pi2sb-lab"
# A generic kernel: the released notebooks must not name this machine's kernel display name.
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_TIMEOUT_S = 900   # per cell under the autograder (Lab 4 trains in one cell)


class LabError(ValueError):
    """Bad input to ``build``/``grade`` (unknown lab, missing submission): the CLI exits with code 2."""


def lab_sources(source_dir: Path = LAB_SOURCES) -> dict[str, Path]:
    """``{"lab1": notebooks/labs/lab1_….py, …}``: the lab id is the file name up to the first underscore."""
    found = {}
    for path in sorted(Path(source_dir).glob("lab[0-9]*.py")):
        found[path.stem.split("_", 1)[0]] = path
    if not found:
        raise LabError(f"no lab sources (lab<N>_<name>.py) in {source_dir}")
    return found


def _api(course: Path):
    """nbgrader's Python API on the course folder ``course`` (created if missing)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    # nbgrader migrates its gradebook with the `alembic` command of this environment
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # the same settings for nbgrader's own tools (formgrader, `nbgrader export`) run from the course folder
    (course / "nbgrader_config.py").write_text(
        "# written by pi2sb_lab.labs.course; nbgrader's own commands read it when run from this folder\n"
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Execute.timeout = {CELL_TIMEOUT_S}\n")
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = COURSE_ID
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = CELL_TIMEOUT_S
    config.ExecutePreprocessor.timeout = CELL_TIMEOUT_S
    return NbGraderAPI(config=config)


def _read_notebook(path: Path):
    """A notebook from ``.ipynb`` (nbformat) or a jupytext ``.py``, with the generic kernelspec if it has none."""
    import jupytext
    import nbformat

    nb = nbformat.read(path, as_version=4) if path.suffix == ".ipynb" else jupytext.read(path)
    nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))
    nb.metadata.pop("jupytext", None)  # a plain .ipynb for the students: jupytext must not pair it with a .py
    return nb


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader could not {what}:\n{result.get('error', '')}\n{result.get('log', '')[-4000:]}")


def build(labs: list[str] | None = None, *, source_dir: Path = LAB_SOURCES, course: Path = COURSE_DIR) -> dict:
    """Generate the student versions of ``labs`` (default: all); return ``{lab: released notebook path}``."""
    import nbformat

    sources = lab_sources(source_dir)
    labs = list(sources) if not labs else labs
    unknown = [lab for lab in labs if lab not in sources]
    if unknown:
        raise LabError(f"LAB must be one of {', '.join(sources)}; got {', '.join(unknown)}")
    api, released = _api(course), {}
    for lab in labs:
        src = Path(course) / "source" / lab
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        nbformat.write(_read_notebook(sources[lab]), src / f"{sources[lab].stem}.ipynb")
        _check(api.generate_assignment(lab, force=True, create=True), f"generate the student version of {lab}")
        released[lab] = Path(course) / "release" / lab / f"{sources[lab].stem}.ipynb"
    return released


@dataclasses.dataclass(frozen=True)
class CellGrade:
    """One graded cell: ``score`` is None while it waits for a person (written answers)."""

    name: str
    score: float | None
    max_score: float
    feedback: str


@dataclasses.dataclass(frozen=True)
class GradeReport:
    """What :func:`grade` returns: the cells in notebook order and the feedback page."""

    lab: str
    student: str
    cells: list[CellGrade]
    feedback_html: Path

    @property
    def auto_score(self) -> float:
        return sum(c.score for c in self.cells if c.score is not None)

    @property
    def auto_max(self) -> float:
        return sum(c.max_score for c in self.cells if c.score is not None)

    @property
    def manual_max(self) -> float:
        return sum(c.max_score for c in self.cells if c.score is None)

    def scores(self) -> dict[str, float | None]:
        return {c.name: c.score for c in self.cells}

    def table(self) -> str:
        width = max(len(c.name) for c in self.cells)
        lines = [f"{self.lab} · student {self.student}", f"  {'cell':<{width}}  points   feedback"]
        for c in self.cells:
            points = f"{'–' if c.score is None else f'{c.score:g}'} / {c.max_score:g}"
            lines.append(f"  {c.name:<{width}}  {points:<7}  {c.feedback}")
        lines.append(f"autograded: {self.auto_score:g} / {self.auto_max:g} points"
                     + (f"; {self.manual_max:g} more graded by hand" if self.manual_max else ""))
        lines.append(f"feedback page: {self.feedback_html}")
        return "\n".join(lines)


def _error_message(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = " ".join(str(out.get("evalue", "")).split())
            return f"{out.get('ename')}: {value}"[:400]
    return ""


def _graded_ids(nb) -> set[str]:
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and "grade_id" in c.metadata["nbgrader"]}


def check_submission(lab: str, nb, submission: Path, sources: dict[str, Path]) -> None:
    """The submission is a notebook of ``lab`` (checked before nbgrader runs, which would otherwise fail
    with its own traceback): it has cells, and its graded cells are that lab's."""
    if not nb.cells:
        raise LabError(f"SUBMISSION {str(submission)!r} has no cells: is it the notebook you meant to hand in?")
    mine, theirs = _graded_ids(_read_notebook(sources[lab])), _graded_ids(nb)
    if mine & theirs:
        return
    other = [name for name, path in sources.items() if name != lab and theirs & _graded_ids(_read_notebook(path))]
    said = f"its graded cells are {other[0]}'s" if other else "it has none of its graded cells"
    raise LabError(f"SUBMISSION {str(submission)!r} is not a notebook of {lab} ({said}); "
                   f"make grade LAB={other[0] if other else lab} …, or hand in {sources[lab].stem}.ipynb")


def grade(lab: str, submission: Path, *, student: str = "student", source_dir: Path = LAB_SOURCES,
          course: Path = COURSE_DIR) -> GradeReport:
    """Autograde ``submission`` (a notebook of ``lab``) for ``student``; write the feedback page."""
    import warnings

    import nbformat
    from nbgrader.api import Gradebook

    # nbgrader's gradebook trips SQLAlchemy's session warnings on every autograde; they say nothing to a grader
    warnings.filterwarnings("ignore", message="Object of type <")
    sources = lab_sources(source_dir)
    if lab not in sources:
        raise LabError(f"LAB must be one of {', '.join(sources)}; got {lab!r}")
    submission = Path(submission)
    if submission.suffix not in (".ipynb", ".py") or not submission.is_file():
        raise LabError(f"SUBMISSION must be an existing .ipynb (or jupytext .py) notebook; got {str(submission)!r}")
    if not student.replace("-", "").replace("_", "").isalnum():
        raise LabError(f"STUDENT must be letters, digits, '-' or '_'; got {student!r}")
    stem = sources[lab].stem
    try:
        nb = _read_notebook(submission)
    except Exception as err:  # not a notebook at all
        raise LabError(f"SUBMISSION {str(submission)!r} is not a readable notebook: {err}") from None
    check_submission(lab, nb, submission, sources)
    build([lab], source_dir=source_dir, course=course)  # the gradebook's tests are always the current source's
    target = Path(course) / "submitted" / student / lab
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    nbformat.write(nb, target / f"{stem}.ipynb")

    api = _api(course)
    _check(api.autograde(lab, student, force=True, create=True), f"autograde {submission}")
    _check(api.generate_feedback(lab, student, force=True), f"write the feedback for {submission}")

    graded = nbformat.read(Path(course) / "autograded" / student / lab / f"{stem}.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in graded.cells}
    order = [c.metadata["nbgrader"]["grade_id"] for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade")]
    with Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}") as gb:
        grades = {g.name: g for g in gb.find_submission_notebook(stem, lab, student).grades}
        cells = []
        for name in order:
            g = grades[name]
            if g.needs_manual_grade:
                cells.append(CellGrade(name, None, g.max_score, "written answer: graded by hand"))
            elif g.cell_type == "markdown":  # nbgrader scores an untouched answer cell 0 by itself
                cells.append(CellGrade(name, float(g.score), g.max_score, "no answer written"))
            else:
                message = _error_message(by_id[name])
                cells.append(CellGrade(name, float(g.score), g.max_score, message or "passed"))
    return GradeReport(lab, student, cells, Path(course) / "feedback" / student / lab / f"{stem}.html")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pi2sb_lab.labs.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate the student versions (build/labs/release/)")
    b.add_argument("labs", nargs="*", help="lab ids (lab1 …); default: all")
    g = sub.add_parser("grade", help="autograde one submitted notebook and print the points per cell")
    g.add_argument("lab", help="lab id: lab1, lab2, …")
    g.add_argument("submission", help="the submitted notebook (.ipynb, or a jupytext .py)")
    g.add_argument("--student", default="student", help="student id for the gradebook (default: student)")
    for p in (b, g):
        p.add_argument("--source", type=Path, default=LAB_SOURCES, help=f"lab sources (default: {LAB_SOURCES})")
        p.add_argument("--course", type=Path, default=COURSE_DIR, help=f"nbgrader course folder (default: {COURSE_DIR})")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for lab, path in build(args.labs, source_dir=args.source, course=args.course).items():
                print(f"{lab}: student version {path}")
        else:
            print(grade(args.lab, Path(args.submission), student=args.student, source_dir=args.source,
                        course=args.course).table())
    except LabError as err:
        parser.error(str(err))  # argparse-style message, exit code 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
