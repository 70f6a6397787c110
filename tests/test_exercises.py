"""Notebooks 01-03 as a short path (issue 11): the prose budget, the exercises' layout, and every
exercise's check: silent on the untouched answer cell, passed by the notebook's own solution,
failed by a planted mistake. Then the checks themselves (issue 16): each form `check_prediction`
accepts and refuses, and `check_eq15_mlp` on right code, on each named mistake, on nets of
distinct widths, and on functions that raise or return the wrong thing."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
import torch
from torch import Tensor

from psp_lite import analytic, capture, teaching
from psp_lite.teaching import eq15, exercises, student_code

ROOT = Path(__file__).resolve().parent.parent
PATH = [ROOT / "notebooks" / name for name in
        ("01_weight_decay_and_z.ipynb", "02_deriving_psp.ipynb", "03_gradient_check.ipynb")]
IDS = [p.stem[:2] for p in PATH]
#: The core's prose of the three notebooks together (the aim: a class does the cores in 30
#: minutes), and one markdown cell anywhere outside the solutions (words outside display math).
MAX_CORE_WORDS, MAX_CELL_WORDS = 1500, 120
#: A notebook's class time as its header states it: "core: about N min; going further: about M min".
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
    header says how long the core and the rest take (measured by timed walkthroughs, not here)."""
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
        core = " ".join(c.source for c in core_cells(path))  # both reasons reach the core,
        assert "weighted by the data" in core and "ours, not the paper's" in core  # ours as ours
        assert "The paper's point" in core and "not local" in core
        # filling both blanks prints the model answer, the same one the solutions give
        sentence = teaching.MODEL_SENTENCE.split("): ", 1)[1]
        assert " ".join(sentence.split()) in " ".join(model.split())
        cell = next(nb.cells[i].source for i in answers if "my_sentence" in nb.cells[i].source)
        assert run_cell(cell, {"teaching": teaching}).startswith("Replace each '...'")  # no answer
        filled = cell.replace("every ... layer", "every later layer")
        filled = filled.replace('"... it', '"input it')
        assert run_cell(filled, {"teaching": teaching}) == teaching.MODEL_SENTENCE + "\n"
        half = cell.replace("every ... layer", "every later layer")  # one blank left: said so
        assert run_cell(half, {"teaching": teaching}).startswith("One blank is still '...'")


#: Per notebook, for each check cell in order: (variable, planted wrong answer, what the check
#: must then say). The wrong answers are evaluated in the notebook's namespace after the run.
PLANTED = {
    "01": [("prediction_1", "'psp'", "because the weights are small or because of where"),
           ("prediction_2", "1", "one weight layer deep"),
           ("prediction_3", "2", "exponent of z_2 itself"),
           ("prediction_4", "1", "fewest neurons and the largest z")],
    "02": [("prediction_1", "[2]", "reads every output of layer 1"),
           ("prediction_2", "[1, 3]", "not what the measurement says")],
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


# --------------------------------------------------------------------------- check_prediction

F64 = torch.float64


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATH, ids=IDS)
def test_solutions_cell_runs_after_the_core_alone(path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    """A class that stops at the core and then opens the solutions: the core's code cells, then
    the solution cells, run without an error and print nothing."""
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = nbformat.read(path, as_version=4)
    first_optional = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                          and c.source.startswith(("## Going further", "## Solutions")))
    namespace: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "psp-lite-setup" in tags:
            continue
        if i < first_optional or "solution" in tags:
            text = run_cell(cell.source, namespace)
            plt.close("all")
            if "solution" in tags:
                assert text == ""
    assert namespace["solutions"]


@pytest.mark.parametrize(("prediction", "measured", "options"), [
    (3, 3, {}), ("3", 3, {}), (" 3.0 ", 3, {}), (3.0, 3, {}), ("1e-3", 0.001, {}),
    ("1/4", 0.25, {}), ([3], 3, {}), ((3,), 3, {}), (np.float64(3), 3, {}),
    (np.array([3]), 3, {}), (torch.tensor(3.0), 3, {}), (torch.tensor([3]), 3, {}),
    (0.1353, 0.13533528, {"rel_tol": 1e-3}), (3, np.int64(3), {}), (3, torch.tensor(3), {}),
    (3, [3], {}), ("3", [3], {}), ((1, 3), [1, 3], {}), ("1, 3", [1, 3], {}),
    ("[1 3]", [1, 3], {}), (np.array([1, 3]), [1, 3], {}), ({3, 1}, [1, 3], {}),
    ([3, 1], [1, 3], {"ordered": False}), ([], [], {}),
    ("reference", "reference", {}), (" Reference ", "reference", {}),
    ("PAPER", "paper", {"choices": ("paper", "reference")}), (["paper"], "paper", {}),
    ("ℓ2", "l2", {"choices": ("none", "l2", "psp")}), ("L2", "l2", {}),
], ids=repr)
def test_check_prediction_accepts(prediction: object, measured: object, options: dict) -> None:
    line = teaching.check_prediction(prediction, measured, what="w", **options)
    assert line.startswith("right (w): the measurement says "), line


@pytest.mark.parametrize(("prediction", "measured", "options", "wrong"), [
    (2, 3, {}, "measured 3, predicted 2"), ("2", 3, {}, "measured 3, predicted 2"),
    (0.1353, 0.13533528, {}, "measured 0.135335, predicted 0.1353"),
    ([3, 1], [1, 3], {}, "measured [1, 3], predicted [3, 1]"),
    (3, [1, 3], {}, "measured [1, 3], predicted [3]"),
    ("paper", "reference", {"choices": ("paper", "reference")},
     "measured reference, predicted paper"),
], ids=repr)
def test_check_prediction_says_wrong(prediction: object, measured: object, options: dict,
                                     wrong: str) -> None:
    line = teaching.check_prediction(prediction, measured, **options)
    assert line.startswith(f"not what the measurement says: {wrong}. "), line


@pytest.mark.parametrize(("prediction", "measured", "options", "why", "form"), [
    ("three", 3, {}, "'three' is not a plain number", "one number"),
    ("3 layers", 3, {}, "'layers' is not a plain number", "one number"),
    ("3 %", 3, {}, "'3 %' has a % sign", "one number"),
    ([1, 2], 3, {}, "it holds 2 numbers", "one number"),
    ([], 3, {}, "it holds no number", "one number"),
    ("1, 2", 3, {}, "it holds 2 numbers", "one number"),
    (np.array([1.0, 2.0]), 3, {}, "it holds 2 numbers", "one number"),
    (True, 1, {}, "True is a truth value", "one number"),
    (float("nan"), 1.0, {}, "nan is not a finite number", "one number"),
    ("1e400", 1.0, {}, "'1e400' is not a finite number", "one number"),
    ({"a": 1}, 3, {}, "{'a': 1} is not a number", "one number"),
    ([[1, 3]], [1, 3], {}, "it is a list of lists", "a list of numbers"),
    (np.eye(2), [1, 3], {}, "it is a table of shape (2, 2)", "a list of numbers"),
    ("one and three", [1, 3], {}, "'one' is not a plain number", "a list of numbers"),
    ([1, 1, 3], [1, 3], {"ordered": False}, "1 appears twice, and in a set of values each "
     "counts once", "a list of numbers"),
    ("(1-LAM)**(4*STEPS)", 0.5, {}, "'(1-LAM)**(4*STEPS)' is a formula in quotes, so it is "
     "text; without the quotes Python computes the number", "one number"),
    ("exp(-2)", 0.5, {}, "'exp(-2)' is a formula in quotes", "one number"),
    (1, "reference", {}, "1 is not text", "your answer as text"),
    ("refrence", "reference", {"choices": ("paper", "reference")},
     "'refrence' is not one of the choices", "one of 'paper' or 'reference'"),
    (3, {"a": 1}, {}, "it is of type int, the measurement of type dict", "an answer of the kind"),
    ({"a": np.eye(2)}, {"a": np.eye(2)}, {}, "{'a': array([[1., 0.], [0., 1.]])} cannot be "
     "compared with the measurement", "an answer of the kind"),
], ids=repr)
def test_check_prediction_refuses_what_it_cannot_read(prediction: object, measured: object,
                                                      options: dict, why: str,
                                                      form: str) -> None:
    line = teaching.check_prediction(prediction, measured, what="w", **options)
    assert line.startswith(f"can't read the prediction (w): {why}"), line
    assert f"; write {form}" in line and line.endswith("then run this cell again"), line
    assert "right" not in line and "measured" not in line and "\n" not in line


@pytest.mark.parametrize(("placeholder", "shown"), [(None, "None"), (..., "..."), ("  ", "'  '")])
def test_check_prediction_before_an_answer(placeholder: object, shown: str) -> None:
    assert teaching.check_prediction(placeholder, 3, what="w") == \
        f"no prediction yet (w): replace {shown} with your answer, then run this cell again"


def test_check_prediction_near_says_close_not_wrong() -> None:
    """A rounded number within `near` is 'close', with how far off and what to give instead;
    outside `near` it is wrong; `rel_tol` still decides what is right; old calls are unchanged."""
    m = 0.95 ** 400
    line = teaching.check_prediction(1.2e-9, m, what="w", rel_tol=1e-3, near=0.05)
    assert line == ("close (w): measured 1.229e-09, predicted 1.2e-09, 2.3% off; give more "
                    "digits, or the formula without quotes, then run this cell again")
    assert not RIGHT.search(line) and "not what" not in line
    assert teaching.check_prediction("1.229e-9", m, rel_tol=1e-3, near=0.05).startswith("right")
    assert teaching.check_prediction(2.06e-9, m, rel_tol=1e-3, near=0.05).startswith(
        "not what the measurement says: measured 1.229e-09, predicted 2.06e-09. The solution")
    assert teaching.check_prediction(1.2e-9, m, rel_tol=1e-3).startswith("not what")


def test_check_prediction_refuses_an_impossible_answer_without_the_measurement() -> None:
    """`among`: a layer 5 of a 4-layer net, or a row 5 of a 4-row matrix, is refused with the
    values allowed and without the measurement; a possible wrong answer still gets it, and a
    named slip its own words, even outside `among`."""
    line = teaching.check_prediction(5, 4, what="layer", among=range(1, 5))
    assert line.startswith("not a possible answer (layer): 5 is not one of 1, 2, 3 or 4; ")
    assert "measured" not in line
    rows = teaching.check_prediction([1, 2, 3, 4, 5], [1, 2, 3, 4], ordered=False,
                                     among=range(1, 5))
    assert rows.startswith("not a possible answer: 5 is not one of") and "measured" not in rows
    assert "measured 4, predicted 3" in teaching.check_prediction(3, 4, among=range(1, 5))
    assert teaching.check_prediction("4", 4, among=range(1, 5)).startswith("right")
    slip = teaching.check_prediction([0, 1, 2, 3], [1, 2, 3, 4], ordered=False,
                                     among=range(1, 5),
                                     hints=[(lambda m: [r - 1 for r in m], "counted from 0")])
    assert "counted from 0" in slip


def test_check_prediction_names_a_slip_it_is_given() -> None:
    """`hints`: a wrong number equal to slip(measured) gets the slip's words, not the pointer to
    the solutions; notebook 01's hints name z's factor for <z^2>'s, a right answer stays right."""
    m = 0.95 ** 400
    hints = ((math.sqrt, "that is z's factor; <z^2> is its square"),)
    line = teaching.check_prediction(0.95 ** 200, m, what="w", rel_tol=1e-3, hints=hints)
    assert line == ("not what the measurement says (w): predicted 3.505e-05: that is z's factor; "
                    "<z^2> is its square; change the prediction, then run this cell again")
    # a named slip gets a second try: the measurement is held back (unnamed: shown, and why)
    assert "1.229e-09" not in line and "1.229e-09" in teaching.check_prediction(1e-3, m)
    assert "z's factor" in teaching.check_prediction(3.5e-5, m, rel_tol=1e-3, near=0.05,
                                                     hints=hints)  # rounded: within `near`
    assert "z's factor" not in teaching.check_prediction(3.5e-5, m, rel_tol=1e-3, hints=hints)
    assert teaching.check_prediction(m, m, hints=hints).startswith("right")
    a = teaching.decay_exponent(0.95 ** 400, 0.05, 100)  # notebook 01: layer 2, 100 steps
    assert a == pytest.approx(4, rel=1e-12)
    for p, words in ((2, "exponent of z_2 itself"), (1, "one weight layer"), ("8", "four weight")):
        line = teaching.check_prediction(p, a, rel_tol=1e-3,
                                         hints=teaching.LAYER_2_EXPONENT_HINTS)
        assert line.startswith("not what the measurement says") and words in line, line
    assert "solution" in teaching.check_prediction(3, a, rel_tol=1e-3,
                                                   hints=teaching.LAYER_2_EXPONENT_HINTS)
    assert teaching.check_prediction("4", a, rel_tol=1e-3,
                                     hints=teaching.LAYER_2_EXPONENT_HINTS).startswith("right")
    broken = ((lambda v: "not a number", "never shown"),)
    assert "never shown" not in teaching.check_prediction(2, 3, hints=broken)


def test_hints_name_slips_in_lists_and_words_too() -> None:
    """A slip that gives a list (in any order where order does not count) or a word is named like
    a number's; a slip of another form, or one that raises, is no match."""
    hints = ((lambda rows: [1, 2, 3], "every row"), (lambda word: "paper", "the literal form"),
             (lambda rows: rows[99], "raises"), (lambda rows: "a word", "another form"))
    line = teaching.check_prediction([3, 1, 2], [2], ordered=False, hints=hints)
    assert line.startswith("not what the measurement says") and "every row" in line, line
    assert "every row" not in teaching.check_prediction([3, 1, 2], [2], hints=hints)  # ordered
    assert "literal form" in teaching.check_prediction("Paper ", "reference", hints=hints)
    line = teaching.check_prediction([1], [2], ordered=False, hints=hints)
    assert "solution" in line and "raises" not in line and "another form" not in line


def test_notebook_02_row_hints_name_each_slip_and_never_a_right_answer() -> None:
    """Exercise 1 of notebook 02 on its own net (3 -> 4 -> 3 -> 2, R_2,2): the measured rows, then
    each likely slip named, and the right answer in any order still right."""
    net = teaching.mlp((3, 4, 3, 2), "tanh", seed=0, dtype=F64)
    x = torch.randn(1, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    rows, hints = (f(net, *a) for f, a in ((teaching.nonzero_rows, (x, 2, 2)),
                                           (teaching.row_hints, (2, 2))))
    assert rows == {2: [2], 1: [1, 2, 3, 4]} and set(hints) == {1, 2}
    said = {(n, str(p)): teaching.check_prediction(p, rows[n], ordered=False, hints=hints[n])
            for n, p in ((2, [1, 2, 3]), (2, []), (1, [2]), (1, []), (2, [2]), (1, [4, 3, 2, 1]),
                         (1, [0, 1, 2, 3]), (2, [1]), (1, [1, 2, 3]))}
    assert "W_1 is 4 x 3: one row per neuron of layer 1" in said[1, "[1, 2, 3]"]
    assert all("count from 1" in said[key] for key in ((1, "[0, 1, 2, 3]"), (2, "[1]")))
    assert "the other neurons of layer 2" in said[2, "[1, 2, 3]"]
    assert "own weights" in said[2, "[]"]
    assert "reads every output of layer 1" in said[1, "[2]"]
    assert "earlier layer (p < l)" in said[1, "[]"]
    assert said[2, "[2]"].startswith("right") and said[1, "[4, 3, 2, 1]"].startswith("right")


def test_notebook_01_fastest_layer_hint() -> None:
    assert "one weight layer deep" in teaching.check_prediction(
        1, 4, hints=teaching.FASTEST_LAYER_HINTS)
    assert "one layer short" in teaching.check_prediction(3, 4, hints=teaching.FASTEST_LAYER_HINTS)
    two_short = teaching.check_prediction(2, 4, hints=teaching.FASTEST_LAYER_HINTS)
    assert "made by the most" in two_short and "measured" not in two_short
    assert teaching.check_prediction(4, 4, hints=teaching.FASTEST_LAYER_HINTS).startswith("right")


def test_check_tensor() -> None:
    ref = torch.tensor([1.0, 2.0], dtype=F64)
    assert "no answer yet" in teaching.check_tensor("ex", None, ref)
    assert teaching.check_tensor("ex", ref.clone(), ref) == "ex: matches (max rel. error 0e+00)"
    assert teaching.check_tensor("ex", ref + 1, ref) == "ex: differs (max rel. error 5.0e-01)"
    assert teaching.check_tensor("ex", 2 * ref, ref).endswith(": a factor 2 too many")
    assert teaching.check_tensor("ex", ref / 2, ref).endswith(": a factor 2 missing")
    assert teaching.check_tensor("ex", 3 * ref, ref).endswith(": off by a constant factor 3")
    assert teaching.check_tensor("ex", -ref, ref).endswith(": a sign")
    assert "shape (1,), expected (2,)" in teaching.check_tensor("ex", ref[:1], ref)


# ---------------------------------------------------------------------------- check_eq15_mlp
#
# Students' functions, written here without the checker's own references: the notebook's
# skeleton with its blanks filled (rightly, or with one mistake), a plain loop over examples
# and neurons, and autograd of a penalty that is not the notebook's.


def c_right(v: SimpleNamespace) -> float:
    return 2 * v.lam / (v.N * v.B * v.zs[v.i].shape[1])


def skeleton(c=c_right, own=None, reach_back=None, grads=None):
    """The notebook's eq15_mlp with its blanks filled; each blank is a function of the loop's
    variables `v` (N, B, i, lam, ys, zs, weights, delta). By default, the solution."""
    own = own or (lambda v: v.zs[v.i])
    reach_back = reach_back or (
        lambda v: (1 - torch.tanh(v.zs[v.i]) ** 2) * (v.delta @ v.weights[v.i + 1]))
    grads = grads or (lambda v: (v.delta.T @ v.ys[v.i], v.delta.sum(0)))

    def eq15_mlp(weights, biases, x, lam):
        N, B = len(weights), len(x)
        ys, zs, y = [], [], x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = y @ w.T + b
            ys.append(y)
            zs.append(z)
            y = torch.tanh(z) if i < N - 1 else z
        out, delta = [None] * N, None
        for i in reversed(range(N)):
            v = SimpleNamespace(N=N, B=B, i=i, lam=lam, ys=ys, zs=zs, weights=weights,
                                delta=delta)
            delta = c(v) * own(v) + (0 if delta is None else reach_back(v))
            v.delta = delta
            out[i] = grads(v)
        return out

    return eq15_mlp


def by_loops(weights, biases, x, lam):
    """Eq. 15 with plain Python loops over examples and neurons (float64 Python floats)."""
    W, bias, X = ([t.tolist() for t in weights], [t.tolist() for t in biases], x.tolist())
    N, B = len(W), len(X)
    zs, ys = [], [X]
    for layer in range(N):
        z = [[bias[layer][k] + sum(w * y for w, y in zip(W[layer][k], row, strict=True))
              for k in range(len(W[layer]))] for row in ys[-1]]
        zs.append(z)
        ys.append([[math.tanh(v) for v in row] for row in z])
    grads, delta = [None] * N, None
    for layer in reversed(range(N)):
        K = len(W[layer])
        c = 2 * lam / (N * B * K)
        new = [[c * zs[layer][b][k] for k in range(K)] for b in range(B)]
        if delta is not None:
            for b, k in itertools.product(range(B), range(K)):
                down = sum(delta[b][h] * W[layer + 1][h][k] for h in range(len(delta[b])))
                new[b][k] += (1 - math.tanh(zs[layer][b][k]) ** 2) * down
        delta = new
        dw = [[sum(delta[b][k] * ys[layer][b][j] for b in range(B))
               for j in range(len(W[layer][0]))] for k in range(K)]
        grads[layer] = (torch.tensor(dw, dtype=F64),
                        torch.tensor([sum(delta[b][k] for b in range(B)) for k in range(K)],
                                     dtype=F64))
    return grads


def by_autograd_of(penalty):
    """A student who differentiates `penalty(zs, ys, lam)` (ys: tanh(z), z at the top)."""
    def eq15_mlp(weights, biases, x, lam):
        params = [t.clone().requires_grad_(True) for pair in zip(weights, biases, strict=True)
                  for t in pair]
        y, zs, ys = x, [], []
        for i in range(0, len(params), 2):
            zs.append(y @ params[i].T + params[i + 1])
            y = torch.tanh(zs[-1]) if i + 2 < len(params) else zs[-1]
            ys.append(y)
        g = torch.autograd.grad(penalty(zs, ys, lam, x), params)
        return [(g[i], g[i + 1]) for i in range(0, len(g), 2)]

    return eq15_mlp


def layer_mean(zs, ys, lam, x):
    return lam * sum((z ** 2).mean() for z in zs) / len(zs)


def slope(z: Tensor) -> Tensor:
    return 1 - torch.tanh(z) ** 2


def test_eq15_references_agree() -> None:
    """Autograd of the notebook's penalty, `analytic`'s recursion for the same nn.Sequential,
    the checker's recursion by hand, and the paper variant against Eq. 7 by autograd."""
    for case in [*teaching.eq15_cases(), teaching.eq15_case(2, (7, 7, 7, 7))]:
        reference = teaching.eq15_by_autograd(case)
        widths = (case.x.shape[1], *(w.shape[0] for w in case.weights))
        net = teaching.mlp(widths, "tanh", dtype=F64)
        with torch.no_grad():
            for layer, w, b in zip(teaching.linear_layers(net), case.weights, case.biases,
                                   strict=True):
                layer.weight.copy_(w)
                layer.bias.copy_(b)
        by_hand = analytic.psp_gradients(analytic.forward_record(net, case.x)[1], case.lam,
                                         "reference")
        ours = teaching.eq15_by_hand(case)
        paper = by_autograd_of(lambda zs, ys, lam, x: lam * 0.5 * sum(
            (z ** 2).sum() for z in zs) / len(x))(case.weights, case.biases, case.x, case.lam)
        paper_by_hand = teaching.eq15_by_hand(case, eq15.Recipe(c="paper"))
        for i, (rw, rb) in enumerate(reference):
            for j, ref in enumerate((rw, rb)):
                key = f"{2 * i}.{('weight', 'bias')[j]}"
                torch.testing.assert_close(by_hand[key], ref, rtol=1e-12, atol=0)
                torch.testing.assert_close(ours[i][j], ref, rtol=1e-12, atol=0)
                torch.testing.assert_close(paper_by_hand[i][j], paper[i][j], rtol=1e-12, atol=0)


def test_tanh_mlp_forward_is_the_nets_forward() -> None:
    """Notebook 03's given forward pass: ys[i] is what layer i + 1 reads (ys[0] = x, then tanh of
    the z below) and zs[i] its potential; the last z is the logits, with no tanh."""
    case = teaching.eq15_case(1, (5, 7, 4, 6, 3), batch=11)
    ys, zs = teaching.tanh_mlp_forward(case.weights, case.biases, case.x)
    net = teaching.mlp((5, 7, 4, 6, 3), "tanh", dtype=F64)
    with torch.no_grad():
        for layer, w, b in zip(teaching.linear_layers(net), case.weights, case.biases,
                               strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    logits, captured = capture(net, case.x)
    assert [tuple(z.shape) for z in zs] == [(11, 7), (11, 4), (11, 6), (11, 3)]
    assert ys[0] is case.x
    for i, z in enumerate(captured.values()):
        torch.testing.assert_close(zs[i], z, rtol=1e-14, atol=0)
        if i:
            torch.testing.assert_close(ys[i], torch.tanh(zs[i - 1]), rtol=0, atol=0)
    torch.testing.assert_close(zs[-1], logits, rtol=1e-14, atol=0)


def test_eq15_cases() -> None:
    notebook, deep = teaching.eq15_cases()
    assert (notebook.name, len(notebook.x), notebook.lam) == ("6→7→7→7", 5, 1e-3)
    assert (deep.name, len(deep.x)) == ("5→7→4→6→3", 11)
    assert len({w.shape[0] for w in deep.weights}) == len(deep.weights)  # distinct widths


def test_every_planted_mistake_is_told_apart() -> None:
    """Each of the checker's wrong references is named as itself, not as an earlier one."""
    square = teaching.eq15_case(2, (7, 7, 7, 7))
    for key, recipe in eq15.VARIANTS[1:]:
        runs = [student_code.Run(c, g) for c in teaching.eq15_cases()
                if (g := teaching.eq15_by_hand(c, recipe)) is not None]
        runs = runs or [student_code.Run(square, teaching.eq15_by_hand(square, recipe))]
        assert exercises._explain(runs) == ([key], 1.0), (key, recipe)


@pytest.mark.parametrize("student", [skeleton(), by_loops, by_autograd_of(layer_mean)],
                         ids=["skeleton", "loops", "autograd"])
def test_eq15_check_matches_right_code(student) -> None:
    result = teaching.check_eq15_mlp(student)
    assert result.ok and result.mistakes == () and result.max_rel_error < 1e-12
    assert result == ("Eq. 15 for the MLP: matches (every dW and db on 6→7→7→7 and "
                      f"5→7→4→6→3; max rel. error {result.max_rel_error:.0e})")


#: (id, student, the name its line must hold, the mistake keys it must report)
MISTAKEN = [
    ("2 too many", skeleton(c=lambda v: 2 * c_right(v)), "a factor 2 too many",
     ["2 too many"]),
    ("2 missing", skeleton(c=lambda v: c_right(v) / 2), "a factor 2 missing", ["2 missing"]),
    ("no 1/B", skeleton(c=lambda v: c_right(v) * v.B),
     "the 1/B of the batch mean is missing", ["1/B missing"]),
    ("1/B twice", skeleton(c=lambda v: c_right(v) / v.B),
     "divided by the batch size B once too often", ["1/B twice"]),
    ("no 1/N", skeleton(c=lambda v: c_right(v) * v.N),
     "the 1/N of the mean over the N layers is missing", ["1/N missing"]),
    ("1/N twice", skeleton(c=lambda v: c_right(v) / v.N),
     "divided by the number of layers N once too often", ["1/N twice"]),
    ("no 1/K", skeleton(c=lambda v: 2 * v.lam / (v.N * v.B)),
     "the 1/K_l of the mean over a layer's K_l neurons is missing", ["1/K missing"]),
    ("1/K twice", skeleton(c=lambda v: c_right(v) / v.zs[v.i].shape[1]),
     "divided by K_l once too often", ["1/K twice"]),
    ("no 1/K, 2 too many", skeleton(c=lambda v: 4 * v.lam / (v.N * v.B)),
     "the 1/K_l of the mean over a layer's K_l neurons is missing", ["1/K missing", "2 too many"]),
    ("no lambda", skeleton(c=lambda v: c_right(v) / v.lam), "lambda is missing",
     ["lambda missing"]),
    ("sign", skeleton(c=lambda v: -c_right(v)), "a sign", ["sign"]),
    ("factor 3", skeleton(c=lambda v: 3 * c_right(v)), "off by a constant factor 3",
     ["constant factor"]),
    ("dW transposed", skeleton(grads=lambda v: (v.ys[v.i].T @ v.delta, v.delta.sum(0))),
     "dP/dW_l is transposed", ["dW transposed"]),
    ("W^T going down", skeleton(reach_back=lambda v: slope(v.zs[v.i]) * (
        v.delta @ v.weights[v.i + 1].T)), "a transposed term going down",
     ["transposed back"]),
    ("no reach-back", skeleton(reach_back=lambda v: 0), "the reach-back is missing",
     ["no reach-back"]),
    ("next own only (a)", skeleton(reach_back=lambda v: slope(v.zs[v.i]) * (
        (2 * v.lam / (v.N * v.B * v.zs[v.i + 1].shape[1]) * v.zs[v.i + 1])
        @ v.weights[v.i + 1])), "only the next layer's own term reaches back",
     ["next own only"]),
    ("no own term", skeleton(own=lambda v: v.zs[v.i] * (v.i == v.N - 1)),
     "the own term is missing", ["no own term"]),
    ("tanh(z) penalized (b)", skeleton(own=lambda v: torch.tanh(v.zs[v.i])),
     "the activation's output is penalized instead of z", ["output penalized"]),
    ("y penalized, by autograd (b)", by_autograd_of(
        lambda zs, ys, lam, x: lam * sum((y ** 2).mean() for y in ys) / len(ys)),
     "the activation's output is penalized instead of z", ["output penalized"]),
    ("tanh for its slope (c)", skeleton(reach_back=lambda v: torch.tanh(v.zs[v.i]) * (
        v.delta @ v.weights[v.i + 1])), "the activation in place of its slope",
     ["phi for slope"]),
    ("no slope", skeleton(reach_back=lambda v: v.delta @ v.weights[v.i + 1]),
     "the activation slope is missing", ["no slope"]),
    ("slope at z_l+1, before W (d)", skeleton(reach_back=lambda v: (
        slope(v.zs[v.i + 1]) * v.delta) @ v.weights[v.i + 1]),
     "the slope taken at the wrong layer", ["slope wrong layer"]),
    ("Eq. 7 per example (e)", skeleton(c=lambda v: v.lam / v.B),
     "the paper's literal Eq. 7 normalization", ["paper Eq. 7"]),
    ("Eq. 7 by autograd (e)", by_autograd_of(
        lambda zs, ys, lam, x: lam / 2 * sum((z ** 2).sum() for z in zs) / len(x)),
     "the paper's literal Eq. 7 normalization", ["paper Eq. 7"]),
    ("Eq. 7 without 1/B (e)", skeleton(c=lambda v: v.lam),
     "the paper's literal Eq. 7 normalization", ["paper Eq. 7", "1/B missing"]),
    ("fan-in width (f)", skeleton(c=lambda v: 2 * v.lam / (v.N * v.B * v.ys[v.i].shape[1])),
     "c_l uses another layer's width", ["other width"]),
    ("first layer's width (f)", skeleton(
        c=lambda v: 2 * v.lam / (v.N * v.B * v.zs[0].shape[1])),
     "c_l uses another layer's width", ["other width"]),
    ("total width (f)", skeleton(
        c=lambda v: 2 * v.lam / (v.N * v.B * sum(z.shape[1] for z in v.zs))),
     "c_l uses the total width", ["total width"]),
    ("1 - tanh for its slope", skeleton(reach_back=lambda v: (1 - torch.tanh(v.zs[v.i])) * (
        v.delta @ v.weights[v.i + 1])), "1 - tanh(z) used as tanh's slope",
     ["slope 1 - tanh"]),
    ("1 - z^2 for its slope", skeleton(reach_back=lambda v: (1 - v.zs[v.i] ** 2) * (
        v.delta @ v.weights[v.i + 1])), "1 - z^2 used as tanh's slope", ["slope 1 - z^2"]),
    ("slope on the own term too", skeleton(own=lambda v: v.zs[v.i] * (
        slope(v.zs[v.i]) if v.i < v.N - 1 else 1)), "the slope applied to the own term too",
     ["slope on own term"]),
    ("N typed in", skeleton(c=lambda v: 2 * v.lam / (3 * v.B * v.zs[v.i].shape[1])),
     "a size typed in as a number", ["typed in"]),
    ("B typed in", skeleton(c=lambda v: 2 * v.lam / (v.N * 5 * v.zs[v.i].shape[1])),
     "a size typed in as a number", ["typed in"]),
    ("every size typed in", skeleton(c=lambda v: 2 * v.lam / (3 * 5 * 7)),
     "a size typed in as a number", ["typed in"]),
    ("total width, by autograd (f)", by_autograd_of(
        lambda zs, ys, lam, x: lam * sum((z ** 2).sum() for z in zs)
        / (len(zs) * len(x) * sum(z.shape[1] for z in zs))),
     "c_l uses the total width", ["total width"]),
]


@pytest.mark.parametrize(("student", "named", "keys"), [m[1:] for m in MISTAKEN],
                         ids=[m[0] for m in MISTAKEN])
def test_eq15_check_names_each_mistake(student, named: str, keys: list[str]) -> None:
    """The line names the mistake first, then any constant factor on top of it ('also ...')."""
    result = teaching.check_eq15_mlp(student)
    assert not result.ok and list(result.mistakes) == keys, result
    assert result.startswith(f"Eq. 15 for the MLP: does not match yet. Likely {named}: "), result
    for key in keys[1:]:
        assert f"; also {eq15.MISTAKES[key].name}: " in result, result
    assert "(first wrong going down: dP/d" in result and "\n" not in result


def test_eq15_check_on_a_mistake_that_raises_where_widths_differ() -> None:
    """The slope at z_{l+1}, after W: computable only where K_l = K_{l+1}, so it raises on
    the deep net and is named from the notebook's; 1 - y_{l-1}^2 raises on both nets and is
    named from a net of equal widths."""
    after = teaching.check_eq15_mlp(skeleton(reach_back=lambda v: slope(v.zs[v.i + 1]) * (
        v.delta @ v.weights[v.i + 1])))
    assert after.mistakes == ("slope wrong layer",), after
    assert after.startswith("Eq. 15 for the MLP: does not match yet. Likely the slope taken "
                            "at the wrong layer: "), after
    assert "; on 5→7→4→6→3 it raises RuntimeError: The size of tensor a" in after
    assert "a shape error" in after
    below = teaching.check_eq15_mlp(skeleton(reach_back=lambda v: (1 - v.ys[v.i] ** 2) * (
        v.delta @ v.weights[v.i + 1])))
    assert below.mistakes == ("raises", "slope wrong layer"), below
    assert below.startswith("Eq. 15 for the MLP: does not match yet: on 6→7→7→7 it raises "
                            "RuntimeError: "), below
    assert below.endswith("Run on 7→7→7→7, where every width is equal, it shows the slope "
                          "taken at the wrong layer: " + eq15.MISTAKES["slope wrong layer"].hint)
    # ys[i] read as y_l (it is y_{l-1}, the layer's input) and put through tanh' again
    off_by_one = teaching.check_eq15_mlp(skeleton(reach_back=lambda v: (
        1 - torch.tanh(v.ys[v.i]) ** 2) * (v.delta @ v.weights[v.i + 1])))
    assert off_by_one.mistakes == ("raises", "slope wrong layer"), off_by_one


def test_eq15_check_needs_distinct_widths() -> None:
    """A c_l with the first layer's width passes on the notebook's net alone (every width 7);
    the deep net, and hard-coded sizes, give it away."""
    first_width = skeleton(c=lambda v: 2 * v.lam / (v.N * v.B * v.zs[0].shape[1]))
    assert teaching.check_eq15_mlp(first_width, [teaching.eq15_case()]).ok
    assert teaching.check_eq15_mlp(first_width).mistakes == ("other width",)
    typed_in = teaching.check_eq15_mlp(skeleton(c=lambda v: 2 * v.lam / (3 * 5 * 7)))
    assert typed_in.mistakes == ("typed in",), typed_in
    assert "N = 3, B = 5 and K_l = 7 hold for this notebook's net only; the deeper net has " \
        "N = 4, B = 11 and widths 7, 4, 6, 3" in typed_in
    odd = teaching.check_eq15_mlp(skeleton(c=lambda v: 2 * v.lam / (v.N * v.B * v.zs[v.i].shape[1])
                                           * (v.N == 3 or 1.7)))
    assert odd.mistakes == ("unrecognised",), odd
    assert odd.endswith("it is right on 6→7→7→7 but not on 5→7→4→6→3, whose widths all "
                        "differ: does every size come from layer l's own tensors?"), odd


def test_eq15_check_is_tight() -> None:
    """float64 agrees to about 1e-16: a relative slip of 1e-8 is not a match."""
    def nearly(*args):
        return [(dw * (1 + 1e-8), db * (1 + 1e-8)) for dw, db in skeleton()(*args)]

    line = teaching.check_eq15_mlp(nearly)
    assert not line.ok and line.mistakes == ("unrecognised",), line
    assert "not like a mistake this check knows: first wrong going down: dP/dW_3 on 6→7→7→7, " \
        "max rel. error 1.0e-08" in line


def test_eq15_check_points_to_the_first_wrong_tensor() -> None:
    def bias_doubled(*args):
        return [(dw, 2 * db) for dw, db in skeleton()(*args)]

    line = teaching.check_eq15_mlp(bias_doubled)
    assert line == ("Eq. 15 for the MLP: does not match yet: first wrong going down: dP/db_3 on "
                    "6→7→7→7, max rel. error 1.0e+00: a factor 2 too many; dP/dW_3 is right, so "
                    "delta_3 is: look at how dP/db_3 is made from it (dP/db_3 is delta_3 summed "
                    "over the batch, not averaged: Eq. 16)")
    bias_mean = teaching.check_eq15_mlp(skeleton(grads=lambda v: (v.delta.T @ v.ys[v.i],
                                                                   v.delta.mean(0))))
    assert "not like a mistake" not in bias_mean, bias_mean  # a diagnosis follows
    assert "divided by the batch size B once too often" in bias_mean
    assert "summed over the batch, not averaged" in bias_mean
    weight_of_y = teaching.check_eq15_mlp(skeleton(grads=lambda v: (
        v.delta.T @ torch.tanh(v.ys[v.i]), v.delta.sum(0))))
    assert "not like a mistake this check knows" in weight_of_y  # no factor: only where
    assert weight_of_y.endswith("look at how dP/dW_3 is made from it (dP/dW_3 = delta_3^T y_2, "
                                "y_2 being the input layer 3 reads)"), weight_of_y
    with_nan = teaching.check_eq15_mlp(lambda *a: [(dw / 0, db) for dw, db in skeleton()(*a)])
    assert "first wrong going down: dP/dW_3 on 6→7→7→7, nan or inf in it" in with_nan
    transposed_and_off = teaching.check_eq15_mlp(
        lambda *a: [(dw.T + 1, db) for dw, db in skeleton()(*a)])  # no crash on the shapes
    assert transposed_and_off.mistakes == ("unrecognised",)
    wrong_below = skeleton(reach_back=lambda v: slope(v.zs[v.i]) * (
        v.delta @ v.weights[v.i + 1]) + (v.i == 0))
    assert teaching.check_eq15_mlp(wrong_below).endswith(
        "the layers above match, so look at the step that makes delta_1 from delta_2: its own "
        "term c_1 z_1, plus what delta_2 sends back (compare with notebook 02's Eq. 14, case "
        "p > l)")


def test_eq15_hints_point_at_what_the_notebooks_show() -> None:
    """No hint points at a recursion 'above' (03 gives only its shape); the slope mistakes point
    at Eq. 14's case p > l, shown in 02's core, and the own-term mistakes at c_l z_l."""
    for key, mistake in eq15.MISTAKES.items():
        assert "written out above" not in mistake.hint, key
    for key in ("phi for slope", "no slope", "slope wrong layer", "slope on own term"):
        assert "Eq. 14" in eq15.MISTAKES[key].hint, key
    for key in ("output penalized", "slope on own term"):
        assert "c_l z_l" in eq15.MISTAKES[key].hint, key


def test_eq15_check_reports_code_that_raises() -> None:
    def raises(weights, biases, x, lam):
        delta = weights[0]
        raise ValueError(f"my own message about {delta.shape[0]} rows")

    line = teaching.check_eq15_mlp(raises)
    assert line.mistakes == ("raises",) and not line.ok
    assert line.startswith("Eq. 15 for the MLP: your function raises ValueError: my own message "
                           "about 7 rows (line "), line
    assert line.endswith(': raise ValueError(f"my own message about {delta.shape[0]} rows")) '
                         "(on 6→7→7→7)")
    def three_layers_only(weights, biases, x, lam):
        if len(weights) != 3:
            raise ValueError("three layers only")
        return skeleton()(weights, biases, x, lam)

    assert teaching.check_eq15_mlp(three_layers_only).startswith(
        "Eq. 15 for the MLP: does not match yet: right on 6→7→7→7, but on 5→7→4→6→3 it raises "
        "ValueError: three layers only (line ")
    skeleton_line = teaching.check_eq15_mlp(skeleton(c=lambda v: ...))
    assert skeleton_line.mistakes == ("not written",)
    assert skeleton_line.startswith("Eq. 15 for the MLP: not written yet: replace every ... in "
                                    "the skeleton (TypeError: "), skeleton_line
    index = teaching.check_eq15_mlp(skeleton(own=lambda v: v.zs[v.i + 1]))
    assert "raises IndexError: list index out of range" in index
    assert "the top layer (i = N - 1) has no layer above it" in index


def float32(*args):
    return [(dw.float(), db.float()) for dw, db in skeleton()(*args)]


@pytest.mark.parametrize(("student", "said"), [
    (None, "no answer yet: write the function above, then run this cell"),
    ([], "expected your function itself (its name, no parentheses), got a list"),  # a call's result
    (lambda *a: None, "your function returns None (is the return missing?); expected a list of "
     "3 (dP/dW_l, dP/db_l) pairs for 6→7→7→7, layer 1 first (on 6→7→7→7)"),
    (lambda *a: skeleton()(*a)[:2], "your function returns 2 pairs; expected a list of 3"),
    (lambda *a: [dw for dw, _ in skeleton()(*a)], "returns a Tensor as item 1; expected a list"),
    (lambda *a: skeleton()(*a)[::-1], "returns the pairs top layer first; expected layer 1 "
     "first"),
    (lambda *a: [(dw.numpy(), db) for dw, db in skeleton()(*a)], "returns a numpy array as "
     "dP/dW_1; expected a torch tensor (stay with torch operations)"),
    (lambda *a: [(dw, None) for dw, _ in skeleton()(*a)], "returns None (is the return "
     "missing?) as dP/db_1; expected a torch tensor"),
    (float32, "returns dP/dW_1 as torch.float32; expected torch.float64"),
    (skeleton(grads=lambda v: (v.delta.T @ v.ys[v.i], v.delta)), "returns dP/db_1 of shape "
     "(5, 7); expected (7,): sum it over the batch, each example adds to it (Eq. 16)"),
    (skeleton(grads=lambda v: (v.delta.T @ v.ys[v.i], ...)), "not written yet: dP/db_1 is "
     "still ..."),
    (skeleton(grads=lambda v: (v.delta.sum(0), v.delta.T @ v.ys[v.i])), "returns pair 1 as "
     "(dP/db_1, dP/dW_1); expected (dP/dW_l, dP/db_l), the weights' gradient first"),
    (skeleton(grads=lambda v: (torch.tanh(v.zs[v.i]).T @ v.delta, v.delta.sum(0))),
     "returns dP/dW_1 of shape (7, 7); expected (7, 6): dP/dW_l = delta_l^T y_{l-1}, y_{l-1} "
     "being the input layer l reads (here y_0, ys[0]), so it has W_l's shape"),
], ids=repr)
def test_eq15_check_reports_the_wrong_structure(student, said: str) -> None:
    line = teaching.check_eq15_mlp(student)
    assert not line.ok and said in line and "\n" not in line, line


def test_written_holds_back_a_measurement_until_the_prediction() -> None:
    """A check cell shows what answers a prediction (a plot, the ratios) only once it is made."""
    assert teaching.written(3, "paper", [1, 2]) and teaching.written(0)
    assert not teaching.written(None) and not teaching.written(3, ...)
    assert not teaching.written("  ")
    assert not RIGHT.search(teaching.NOT_YET_SHOWN)
