"""Notebooks 01-03 as a short path (issue 11): the prose budget, the exercises' layout, and every
exercise's check: silent on the untouched answer cell, passed by the notebook's own solution,
failed by a planted mistake."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PATH = [ROOT / "notebooks" / name for name in
        ("01_weight_decay_and_z.ipynb", "02_deriving_psp.ipynb", "03_gradient_check.ipynb")]
IDS = [p.stem[:2] for p in PATH]
#: The three notebooks' prose together, and one markdown cell (words outside display math).
MAX_WORDS, MAX_CELL_WORDS = 2500, 120
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
HTML_TAG = re.compile(r"<[^>]+>")


def prose_words(cell: nbformat.NotebookNode) -> int:
    """Words of a markdown cell, display equations ($$...$$) and HTML tags left out."""
    return len(HTML_TAG.sub(" ", DISPLAY_MATH.sub(" ", cell.source)).split())


def markdown_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "markdown"
            and "psp-lite-header" not in c.metadata.get("tags", [])]


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]


def test_prose_budget() -> None:
    total = sum(prose_words(c) for p in PATH for c in markdown_cells(p))
    assert total <= MAX_WORDS, f"notebooks 01-03 have {total} words of prose (budget {MAX_WORDS})"
    for p in PATH:
        for c in markdown_cells(p):
            assert prose_words(c) <= MAX_CELL_WORDS, \
                f"{p.name}: a markdown cell of {prose_words(c)} words: {c.source[:60]!r}"


@pytest.mark.parametrize("path", PATH, ids=IDS)
def test_exercise_layout(path: Path) -> None:
    """At least two exercises under headings that start with 'Exercise'; every check cell has an
    answer cell before it; solutions come after a 'Solutions' heading at the end, hidden in
    Jupyter (source_hidden) and in Colab (cellView form with a title), never right below a
    check."""
    nb = nbformat.read(path, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if re.match(r"#+\s+Exercise", line)]
    assert len(headings) >= 2, f"{path.name}: {len(headings)} exercise headings"
    checks, answers, solutions = (tagged(nb, t) for t in
                                  ("exercise-check", "exercise-answer", "solution"))
    assert len(checks) >= 2 and len(answers) >= len(checks) and len(solutions) >= 1
    for i in checks:
        assert any(a < i for a in answers)
        assert "solution" not in nb.cells[i + 1].metadata.get("tags", [])
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and c.source.startswith("## Solutions"))
    assert start > max(checks) and all(i > start for i in solutions)
    assert all(i in solutions or nb.cells[i].cell_type == "markdown"
               for i in range(start, len(nb.cells)))
    assert "<details>" in nb.cells[start].source
    for i in solutions:
        cell = nb.cells[i]
        assert cell.metadata["jupyter"]["source_hidden"] is True
        assert cell.metadata["cellView"] == "form" and cell.source.startswith("# @title ")


#: Per notebook, for each check cell in order: (variable, planted wrong answer, what the check
#: must then say). The wrong answers are evaluated in the notebook's namespace after the run.
PLANTED = {
    "01": [("prediction_1", "1", "not what the measurement says"),
           ("prediction_2", "1", "not what the measurement says"),
           ("prediction_3", "(1 - LAM) ** (2 * STEPS)", "not what the measurement says")],
    "02": [("prediction_1", "[1, 3]", "not what the measurement says"),
           ("prediction_2", "[1, 2, 3]", "not what the measurement says"),
           ("prediction_3", "[2]", "not what the measurement says")],
    "03": [("eq15_mlp", "lambda w, b, x, lam: [(2 * dw, 2 * db) for dw, db in "
            "solution_eq15(w, b, x, lam)]", "a factor 2 too many"),
           ("prediction_2", "'paper'", "not what the measurement says"),
           ("answer_3", "-answer_3", "a sign")],
}


def run_cell(source: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102
    return out.getvalue()


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATH, ids=IDS)
def test_exercises_check_themselves(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the notebook's code in smoke mode in this process: each check says 'no ... yet' on the
    untouched answer, each solution prints 'right'/'matches', and each planted mistake fails."""
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = nbformat.read(path, as_version=4)
    namespace: dict = {"__name__": "__notebook__"}
    for cell in nb.cells:
        if cell.cell_type != "code" or "psp-lite-setup" in cell.metadata.get("tags", []):
            continue
        tags = cell.metadata.get("tags", [])
        text = run_cell(cell.source, namespace)
        plt.close("all")
        if "exercise-check" in tags:
            assert re.search(r"no (prediction|answer) yet|not written yet", text), text
            assert "right" not in text and "matches" not in text
        if "solution" in tags:
            assert re.search(r"\bright\b|matches", text), text
            assert not re.search(r"not what|differs|does not match|no (prediction|answer)", text)
    if "eq15_mlp" in namespace:  # 03: the solution, which a planted mistake below wraps
        namespace["solution_eq15"] = namespace["eq15_mlp"]
    checks = [nb.cells[i].source for i in tagged(nb, "exercise-check")]
    planted = PLANTED[path.stem[:2]]
    assert sum(len(re.findall(r"check_\w+\(", c)) for c in checks) == len(planted)
    for name, wrong, expected in planted:
        namespace[name] = eval(wrong, namespace)  # noqa: S307
        text = "".join(run_cell(c, namespace) for c in checks if name in c)
        assert expected in text, f"{name} = {wrong}: {text}"
        plt.close("all")
