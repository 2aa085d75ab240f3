"""Every bad input of docs/bad_input.md is refused with the expected error and a message naming it,
and the committed page lists every case (regenerate: python tests/bad_input_table.py --write docs/bad_input.md)."""

from __future__ import annotations

import re
from pathlib import Path

import bad_input_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"


def test_every_bad_input_gets_a_clear_answer():
    text, results = bad_input_table.table()
    wrong = [(case.bad_input, case.expect, kind, message[:300]) for case, kind, message in results
             if kind != case.expect or not re.search(case.names, message)]
    assert not wrong, "answers that changed or lost the argument's name:\n" + "\n".join(map(str, wrong))
    assert len(results) >= 160 and sum(not case.issue for case, _, _ in results) >= 15
    assert not any("Traceback" in message for _, _, message in results)
    page = DOC.read_text()
    for line in text.splitlines()[2:]:
        row = " | ".join(line.split(" | ")[:5])  # number, issue mark, area, input, answer: stable across torch versions
        assert row in page, f"docs/bad_input.md is out of date (rerun the script): missing {row!r}"
