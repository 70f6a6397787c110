"""Run a notebook on a fresh kernel with a per-cell timeout, retrying a timeout once.

nbclient can wait forever for a reply that never comes when a cell displays widgets (a known
nbclient issue, jupyter/nbclient#312; seen here on notebook 01's slider cell on a loaded machine).
So every cell gets a timeout well under CI's limit, and a notebook whose cell times out is run
once more from the top on a fresh kernel, with a warning that says so. A second timeout fails,
naming the cell.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError
from nbformat import NotebookNode

#: Seconds one cell may run. The longest smoke-mode cell takes under a minute on a loaded 2-core
#: machine; CI's whole job has 90 minutes, so even a hang and its retry stay well inside it.
CELL_TIMEOUT = 300.0


class NotebookTimeoutError(AssertionError):
    """A notebook's cell timed out on every attempt (a test failure, not an error)."""


class NotebookRetryWarning(UserWarning):
    """A notebook's cell timed out once and the notebook was run again on a fresh kernel."""


@dataclass
class NotebookRun:
    """The attempt that finished: its executed notebook, wall time and the kernel's peak memory."""

    notebook: NotebookNode
    seconds: float  #: wall time of the finished attempt, kernel start included
    peak_bytes: int | None  #: the kernel's peak resident memory (Linux), else None
    timeouts: list[str] = field(default_factory=list)  #: one line per attempt that timed out

    @property
    def retried(self) -> bool:
        return bool(self.timeouts)


def kernel_pid(client: NotebookClient) -> int | None:
    """The kernel process's id (jupyter_client >= 7: the local provisioner's Popen)."""
    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    return getattr(process, "pid", None)


def peak_rss(pid: int | None) -> int | None:
    """Peak resident memory (bytes) of process `pid` so far, or None where /proc has no answer."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def describe_cell(nb: NotebookNode, index: int) -> str:
    """'cell 8 of 12 (`explorer.ui()`)': the cell counted from 1, and its first code line."""
    lines = [line for line in nb.cells[index].source.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    first = lines[0].strip() if lines else ""
    return (f"cell {index + 1} of {len(nb.cells)} "
            f"(`{first[:60]}{'...' if len(first) > 60 else ''}`)")


def execute_once(nb: NotebookNode, folder: Path, cell_timeout: float) -> tuple[float, int | None]:
    """Run `nb` in place on a fresh kernel: (wall seconds, kernel peak bytes or None).

    On a timeout, raises nbclient's CellTimeoutError with `cell_index` set to the cell's index.
    """
    current = {"index": 0}
    peaks: list[int] = []

    def on_start(cell_index: int, **_: object) -> None:
        current["index"] = cell_index

    def on_executed(**_: object) -> None:  # the kernel is alive here; VmHWM only grows
        peak = peak_rss(kernel_pid(client))
        if peak is not None:
            peaks.append(peak)

    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}},
                            on_cell_start=on_start, on_cell_executed=on_executed)
    start = time.perf_counter()
    try:
        client.execute()
    except CellTimeoutError as err:
        err.cell_index = current["index"]
        raise
    return time.perf_counter() - start, max(peaks, default=None)


def run_notebook(make_notebook: Callable[[], NotebookNode], folder: Path, name: str, *,
                 cell_timeout: float = CELL_TIMEOUT, retries: int = 1) -> NotebookRun:
    """Execute `make_notebook()` top to bottom in `folder` on a fresh python3 kernel.

    A cell running past `cell_timeout` seconds stops that attempt; the notebook is then built
    and run again from the top on a fresh kernel, up to `retries` more times, with a
    `NotebookRetryWarning` each time. When the last attempt also times out, raises
    `NotebookTimeoutError` naming the cell. Cell errors raise nbclient's CellExecutionError.
    """
    timeouts: list[str] = []
    for attempt in range(retries + 1):
        nb = make_notebook()
        try:
            seconds, peak = execute_once(nb, folder, cell_timeout)
        except CellTimeoutError as err:
            timeouts.append(f"{describe_cell(nb, err.cell_index)} ran past {cell_timeout:g} s")
            if attempt < retries:
                warnings.warn(f"{name}: {timeouts[-1]} (attempt {attempt + 1}); running the "
                              "notebook again on a fresh kernel (nbclient can hang on widget "
                              "output: jupyter/nbclient#312)", NotebookRetryWarning, stacklevel=2)
            continue
        return NotebookRun(nb, seconds, peak, timeouts)
    raise NotebookTimeoutError(
        f"{name}: timed out on every one of {retries + 1} attempts, each on a fresh kernel: "
        + "; ".join(timeouts))
