"""Every notebook runs top to bottom on a fresh kernel in smoke mode, within Binder's memory.

Each cell has a timeout (tests/notebook_runner.py: CELL_TIMEOUT), and a notebook whose cell times
out is run once more on a fresh kernel, with a warning (nbclient can hang on widget output).
The timeout catches a hang; it is no speed claim. Times are measured and reported, never asserted:
how long a notebook takes depends on what else the machine is doing (07 took 59 s alone and 266 s
on a loaded 2-core laptop), so a time limit would fail the suite on a busy machine while saying
nothing about the code. Speed is measured in benchmarks/, as ratios of variants run side by side.
Each run's wall time (kernel start included), the kernel's peak memory (VmHWM from
/proc/<pid>/status, Linux only; memory does not depend on load, so it is checked) and any retry
are recorded as test properties; tests/conftest.py prints them as a table at the end of the
session, with the machine's load average.
"""

from __future__ import annotations

import ast
import os
import re
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from notebook_runner import (
    CELL_TIMEOUT,
    NotebookRetryWarning,
    NotebookTimeoutError,
    run_notebook,
)

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: CI's whole job (.ci/run) has 90 minutes.
CI_LIMIT_SECONDS = 90 * 60
#: Binder gives a notebook about 2 GB; the defaults stay under 1.5 GB, smoke runs all the more.
MAX_PEAK_BYTES = 1.5e9
#: What a check prints for a right answer (`check_prediction`, `check_eq15_mlp`, `check_tensor`).
ANSWER_SHOWN = re.compile(r"the measurement says|\bright\b|\bmatches\b")


def load_average() -> float | None:
    """The machine's 1-minute load average, or None where the OS has none (Windows)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def test_a_hung_cell_and_its_retry_leave_most_of_ci_to_the_rest() -> None:
    # a hang costs at most two cell timeouts (the attempt and its retry): a ninth of CI's job
    assert 0 < 2 * CELL_TIMEOUT <= CI_LIMIT_SECONDS / 9


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     record_property) -> None:
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    record_property("notebook", path.name)
    record_property("load_average", load_average())  # the conditions the time was measured in
    start = time.perf_counter()
    try:
        run = run_notebook(lambda: nbformat.read(path, as_version=4), path.parent, path.name)
    except NotebookTimeoutError as err:
        record_property("notebook_seconds", time.perf_counter() - start)  # both attempts
        record_property("notebook_retried", "timed out on both attempts")
        pytest.fail(str(err), pytrace=False)
    seconds, peak, nb = run.seconds, run.peak_bytes, run.notebook
    record_property("notebook_seconds", seconds)
    record_property("notebook_peak_bytes", peak)
    if run.retried:
        record_property("notebook_retried", "; ".join(run.timeouts))
    mem = "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"
    print(f"{path.name}: {seconds:.1f} s, kernel peak memory {mem}"
          + (f" (after a retry: {'; '.join(run.timeouts)})" if run.retried else ""))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "SMOKE RUN" in text, "a notebook must say visibly that it is a smoke run"
    # Run All reveals no answer: solution cells print nothing and no check reports a right answer
    solution_output = [o for c in nb.cells if "solution" in c.metadata.get("tags", [])
                       for o in c.get("outputs", []) if o.get("output_type") != "error"]
    assert not solution_output, f"{path.name}: a solution cell shows output under Run All"
    checked = "".join(o.get("text", "") for c in nb.cells
                      if {"exercise-check", "solution"} & set(c.metadata.get("tags", []))
                      for o in c.get("outputs", []))
    shown = ANSWER_SHOWN.search(checked) or re.search("the measurement says", text)
    assert not shown, f"{path.name}: Run All prints an answer: {shown.group(0)!r}"
    assert os.environ["PSP_LITE_SMOKE"] == "1"
    assert peak is None or peak < MAX_PEAK_BYTES, \
        f"{path.name}: kernel peak memory {peak / 1e9:.2f} GB in smoke mode (limit 1.5 GB)"


# ----------------------------------------------------------------------------- the retry itself

#: Sleeps far past the test's timeout the first time it runs in `folder`, returns at once after.
HANGS_ONCE = """import pathlib, time
marker = pathlib.Path("first-attempt-was-here")
first = not marker.exists()
marker.touch()
time.sleep(600 if first else 0)
print("finished")"""
#: Sleeps far past the test's timeout every time.
HANGS_ALWAYS = "import time\ntime.sleep(600)"
TINY_TIMEOUT = 5.0  # s: far above what `print` needs on a loaded machine, far below 600 s


def tiny_notebook(code: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("a tiny notebook"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(code),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})


def test_a_timed_out_notebook_is_run_again_on_a_fresh_kernel_and_says_so(tmp_path: Path) -> None:
    with pytest.warns(NotebookRetryWarning,
                      match=r"hangs-once: cell 3 of 3 \(`import pathlib, time`\) ran past 5 s "
                            r"\(attempt 1\); running the notebook again"):
        run = run_notebook(lambda: tiny_notebook(HANGS_ONCE), tmp_path, "hangs-once",
                           cell_timeout=TINY_TIMEOUT)
    assert run.retried and run.timeouts == ["cell 3 of 3 (`import pathlib, time`) ran past 5 s"]
    assert run.notebook.cells[2].outputs[0]["text"] == "finished\n"


def test_a_notebook_that_times_out_twice_fails_naming_the_cell(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught, \
            pytest.raises(NotebookTimeoutError) as info:
        warnings.simplefilter("always")
        run_notebook(lambda: tiny_notebook(HANGS_ALWAYS), tmp_path, "hangs-always",
                     cell_timeout=TINY_TIMEOUT)
    assert str(info.value) == (
        "hangs-always: timed out on every one of 2 attempts, each on a fresh kernel: "
        "cell 3 of 3 (`import time`) ran past 5 s; cell 3 of 3 (`import time`) ran past 5 s")
    assert [w.category for w in caught] == [NotebookRetryWarning]  # one retry, then the failure


# ----------------------------------------------------------------- times are reported, not asserted

TESTS = Path(__file__).resolve().parent
#: A lowercase name or attribute holding a measured time (`seconds`, `run.seconds`, `elapsed`).
MEASURED = re.compile(r"(^|_)(seconds|secs|elapsed|latency|duration|took|wall)($|_)")
#: The clocks a measured time comes from (`time.perf_counter()`, `time.time()`, ...).
CLOCKS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
          "process_time"}
ORDERINGS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _reads_a_clock(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr in CLOCKS for n in ast.walk(node))


def wall_clock_asserts(source: str) -> list[int]:
    """Line numbers of the asserts in `source` that order a measured time against anything: a
    clock reading, a name assigned from one, or a lowercase name such as `seconds` (constants in
    capitals, such as a timeout compared with CI's limit, are configuration, not measurements)."""
    tree = ast.parse(source)
    timed = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and _reads_a_clock(n.value)
             for t in n.targets if isinstance(t, ast.Name)}

    def measured(node: ast.AST) -> bool:
        methods = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        for n in ast.walk(node):
            name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) \
                and id(n) not in methods else None  # a method (`td.total_seconds()`) is no time
            if name and (name in timed or (name != name.upper() and MEASURED.search(name))):
                return True
        return _reads_a_clock(node)

    return sorted(a.lineno for a in ast.walk(tree) if isinstance(a, ast.Assert)
                  for c in ast.walk(a.test) if isinstance(c, ast.Compare)
                  and any(isinstance(op, ORDERINGS) for op in c.ops)
                  and any(measured(x) for x in (c.left, *c.comparators)))


def test_the_wall_clock_detector_finds_time_limits_and_nothing_else() -> None:
    limits = ("assert seconds < MAX_SECONDS",  # what this file asserted per notebook
              "assert run.seconds <= 120",
              "start = time.perf_counter()\nf()\nassert time.perf_counter() - start < 5",
              "t0 = time.time()\nf()\ndt = time.time() - t0\nassert dt < 1")
    assert [wall_clock_asserts(s) for s in limits] == [[1], [1], [3], [4]]
    others = ("assert peak is None or peak < MAX_PEAK_BYTES",
              "assert 0 < 2 * CELL_TIMEOUT <= CI_LIMIT_SECONDS / 9",
              "assert run.timeouts == ['cell 3 ran past 5 s']",
              "assert abs((now - made).total_seconds()) < 600",  # a timestamp is recent
              "start = time.perf_counter()\nprint(time.perf_counter() - start)")
    assert [wall_clock_asserts(s) for s in others] == [[]] * len(others)


def test_no_test_asserts_a_wall_clock_time() -> None:
    """A time limit fails the suite on a busy machine and says nothing about the code: tests
    measure and report times; speed claims live in benchmarks/ as ratios of variants run side by
    side."""
    found = {p.name: lines for p in sorted(TESTS.glob("*.py"))
             if (lines := wall_clock_asserts(p.read_text(encoding="utf-8")))}
    assert not found, f"asserts on a measured time (file: lines): {found}"
