"""Shared test requirements and session hooks.

* `missing_requirement`: a test whose requirement (real data, a browser) is missing skips with
  the reason and how to get it, except in CI (`CI=true`), where it fails: CI must run every test.
* `fashion_mnist` / `debian_fashion_mnist`: the real-data tests' requirement, through it.
* After the run, a table of each notebook's smoke-run time, peak memory and retries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

#: Where Debian's `dataset-fashion-mnist` puts the four idx .gz files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
GET_FASHION_MNIST = ("get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put "
                     "its four idx files in $PSP_LITE_DATA/FashionMNIST/raw/ (README, Data)")


def in_ci() -> bool:
    """True on a CI machine: `CI=true` (set by .ci/run, GitHub Actions, GitLab CI, ...)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_requirement(what: str, how: str) -> NoReturn:
    """Skip the running test because `what` is missing, saying `how` to get it; fail in CI."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: CI runs every test, so this is a failure, not a skip); "
                    f"{how}", pytrace=False)
    pytest.skip(f"{what}; {how}")


@pytest.fixture(scope="session")
def fashion_mnist() -> None:
    """Fashion-MNIST is on this machine (found without downloading), else skip / fail in CI."""
    from psp_lite.data import DatasetNotFoundError, load_dataset

    try:
        load_dataset("fashion-mnist", download=False, train_subset=1, test_subset=1)
    except DatasetNotFoundError:
        missing_requirement("Fashion-MNIST is not on this machine", GET_FASHION_MNIST)


@pytest.fixture(scope="session")
def debian_fashion_mnist() -> Path:
    """The folder of Debian's Fashion-MNIST files, else skip / fail in CI."""
    if not all((DEBIAN_FASHION_MNIST / f"{name}.gz").is_file() for name in (
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte")):
        missing_requirement(f"Debian's Fashion-MNIST files are not in {DEBIAN_FASHION_MNIST}",
                            "install them with `apt-get install dataset-fashion-mnist`")
    return DEBIAN_FASHION_MNIST

#: notebook, seconds, peak bytes, outcome, retry note, 1-minute load average when it started
Row = tuple[str, float, "int | None", str, str, "float | None"]


def notebook_rows(terminalreporter: pytest.TerminalReporter) -> list[Row]:
    """One `Row` per notebook run by tests/test_notebooks.py, from its recorded properties."""
    rows = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            props = dict(getattr(report, "user_properties", ()))
            if "notebook_seconds" in props:
                rows.append((props["notebook"], props["notebook_seconds"],
                             props.get("notebook_peak_bytes"), report.outcome,
                             props.get("notebook_retried", ""), props.get("load_average")))
    return sorted(rows)


def machine_line() -> str:
    """'2 CPUs, load average now 1.52 / 1.80 / 1.43 (1 / 5 / 15 min)': what the times depend on."""
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        load = f", load average now {load} (1 / 5 / 15 min)"
    except (AttributeError, OSError):
        load = ""
    return f"{os.cpu_count()} CPUs{load}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: one line per executed notebook, then the series total and the machine.

    Times are reported, never checked: they depend on what else the machine is doing."""
    rows = notebook_rows(terminalreporter)
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("notebooks in smoke mode (fresh kernel each)")
    write(f"{'notebook':<44} {'time':>8} {'load':>5} {'peak memory':>12}  result")
    for name, seconds, peak, outcome, retried, load in rows:
        mem = "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"
        shown = "n/a" if load is None else f"{load:.1f}"
        note = f" (retried on a fresh kernel: {retried})" if retried else ""
        write(f"{name:<44} {seconds:>6.1f} s {shown:>5} {mem:>12}  {outcome}{note}")
    peaks = [r[2] for r in rows if r[2] is not None]
    top = f"{max(peaks) / 2**20:.0f} MiB" if peaks else "n/a"
    write(f"{'total (' + str(len(rows)) + ' notebooks)':<44} {sum(r[1] for r in rows):>6.1f} s "
          f"{'':>5} {top:>12}  (largest peak)")
    write(f"times are wall-clock, kernel start included, reported and not checked; 'load' is the "
          f"1-minute load average as each notebook started; {machine_line()}")


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty run cache of this test's own ($PSP_LITE_CACHE), returned as its folder."""
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
