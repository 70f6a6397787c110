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
#: The core's prose of the three notebooks together (a class does the core in 30 minutes), and one
#: markdown cell anywhere outside the solutions (words outside display math).
MAX_CORE_WORDS, MAX_CELL_WORDS = 1500, 120
#: A notebook's class time as its header states it: "core: about N min; going further: about M min".
MAX_CORE_MINUTES = 30
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
HTML_TAG = re.compile(r"<[^>]+>")
OPTIONAL = ("Going further", "Solutions")


def prose_words(cell: nbformat.NotebookNode) -> int:
    """Words of a markdown cell, display equations ($$...$$) and HTML tags left out."""
    return len(HTML_TAG.sub(" ", DISPLAY_MATH.sub(" ", cell.source)).split())


def markdown_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "markdown"
            and "psp-lite-header" not in c.metadata.get("tags", [])]


def sections(path: Path) -> list[tuple[str, list[nbformat.NotebookNode]]]:
    """(the last '## ' heading so far, '' before the first, its markdown cells), in order."""
    out: list[tuple[str, list[nbformat.NotebookNode]]] = [("", [])]
    for cell in markdown_cells(path):
        heading = next((line[3:].strip() for line in cell.source.splitlines()
                        if line.startswith("## ")), None)
        if heading is not None:
            out.append((heading, []))
        out[-1][1].append(cell)
    return out


def core_cells(path: Path) -> list[nbformat.NotebookNode]:
    """The markdown of the core: every section not headed 'Going further...' or 'Solutions'."""
    return [c for heading, cells in sections(path) if not heading.startswith(OPTIONAL)
            for c in cells]


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]


def test_prose_budget() -> None:
    counts = {p.stem[:2]: sum(prose_words(c) for c in core_cells(p)) for p in PATH}
    assert sum(counts.values()) <= MAX_CORE_WORDS, \
        f"the core of notebooks 01-03 has {counts} words of prose (budget {MAX_CORE_WORDS})"
    for p in PATH:
        for heading, cells in sections(p):
            for c in cells if heading != "Solutions" else []:
                assert prose_words(c) <= MAX_CELL_WORDS, \
                    f"{p.name}: a markdown cell of {prose_words(c)} words: {c.source[:60]!r}"


def test_core_comes_first_and_the_header_states_the_time() -> None:
    """Optional sections follow the core ('Going further...' headings, then 'Solutions'); each
    header says how long the core and the rest take, and the three cores fit in 30 minutes."""
    core_minutes = 0
    for p in PATH:
        headings = [h for h, _ in sections(p) if h]
        optional = [h.startswith(OPTIONAL) for h in headings]
        assert any(h.startswith("Going further") for h in headings), p.name
        first = optional.index(True)
        assert all(optional[first:]), f"{p.name}: a core section after 'Going further': {headings}"
        assert headings[-1] == "Solutions"
        header = nbformat.read(p, as_version=4).cells[0].source
        m = re.search(r"core: about (\d+) min; going further: about (\d+) min", header)
        assert m, f"{p.name}: the first cell does not state the class time"
        core_minutes += int(m.group(1))
    assert core_minutes <= MAX_CORE_MINUTES


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
        assert cell.metadata["jupyter"]["outputs_hidden"] is True
        assert cell.metadata["cellView"] == "form" and cell.source.startswith("# @title ")
        assert "print(" not in cell.source, "a solution cell must not print its answer"
    if path.stem.startswith("02"):  # the one sentence, and a model answer naming both reasons
        assert "my_sentence" in "".join(nb.cells[i].source for i in answers)
        model = nb.cells[start].source
        assert "non-local" in model and "Eq. 14" in model and "metric of the" in model


#: Per notebook, for each check cell in order: (variable, planted wrong answer, what the check
#: must then say). The wrong answers are evaluated in the notebook's namespace after the run.
PLANTED = {
    "01": [("prediction_1", "1", "not what the measurement says"),
           ("prediction_2", "(1 - LAM) ** (2 * STEPS)", "not what the measurement says"),
           ("prediction_3", "1", "not what the measurement says")],
    "02": [("prediction_1", "[1, 3]", "not what the measurement says"),
           ("prediction_2", "[1, 2, 3]", "not what the measurement says"),
           ("prediction_3", "[2]", "not what the measurement says")],
    "03": [("eq15_mlp", "lambda w, b, x, lam: [(2 * dw, 2 * db) for dw, db in "
            "solution_eq15_mlp(w, b, x, lam)]", "a factor 2 too many"),
           ("prediction_2", "[1, 2, 5]", "not what the measurement says"),
           ("prediction_3", "'paper'", "not what the measurement says"),
           ("answer_4", "-solutions['answer_4']", "a sign")],
}
#: What a check says of a right answer, and of an untouched answer cell.
RIGHT = re.compile(r"\bright\b|matches")
UNTOUCHED = re.compile(r"no (prediction|answer) yet|not written yet")


def run_cell(source: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102
    return out.getvalue()


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATH, ids=IDS)
def test_exercises_check_themselves(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the notebook's code in smoke mode in this process: each check says 'no ... yet' on the
    untouched answer, the solution cells print nothing, each stored solution passes its check and
    each planted mistake fails it."""
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
            assert UNTOUCHED.search(text), text
            assert not RIGHT.search(text)
        if "solution" in tags:
            assert text == "", f"a solution cell printed: {text!r}"
    checks = [nb.cells[i].source for i in tagged(nb, "exercise-check")]
    planted = PLANTED[path.stem[:2]]
    assert sum(len(re.findall(r"check_\w+\(", c)) for c in checks) == len(planted)
    solutions = namespace["solutions"]
    assert set(solutions) == {name for name, _, _ in planted}
    for name, value in solutions.items():  # revealing a solution: the check then says right
        namespace[name] = value
        text = "".join(run_cell(c, namespace) for c in checks if name in c)
        assert RIGHT.search(text) and "not what" not in text, f"{name}: {text}"
    for name, wrong, expected in planted:
        namespace[name] = eval(wrong, namespace)  # noqa: S307
        text = "".join(run_cell(c, namespace) for c in checks if name in c)
        assert expected in text, f"{name} = {wrong}: {text}"
        namespace[name] = solutions[name]
        plt.close("all")
