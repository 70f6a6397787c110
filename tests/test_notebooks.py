"""Every notebook runs top to bottom on a fresh kernel in smoke mode, within Binder's limits.

Each run's wall time (kernel start included) and the kernel's peak memory (VmHWM from
/proc/<pid>/status, Linux only) are recorded as test properties; tests/conftest.py prints them as
a table at the end of the session.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: Per notebook in smoke mode: generous on a loaded 2-core machine (DESIGN.md aims well under 60 s).
MAX_SECONDS = 120.0
#: The whole series in smoke mode (issue 6: under 10 minutes on the 2-core CI machine).
MAX_SERIES_SECONDS = 600.0
#: Binder gives a notebook about 2 GB; the defaults stay under 1.5 GB, smoke runs all the more.
MAX_PEAK_BYTES = 1.5e9
SECONDS: dict[str, float] = {}


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


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     record_property) -> None:
    monkeypatch.setenv("PSP_LITE_SMOKE", "1")
    monkeypatch.setenv("PSP_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    peaks: list[int] = []

    def after_cell(**_: object) -> None:  # the kernel is alive here; VmHWM only grows
        peak = peak_rss(kernel_pid(client))
        if peak is not None:
            peaks.append(peak)

    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=after_cell)
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        peak = max(peaks, default=None)
        SECONDS[path.name] = seconds
        record_property("notebook", path.name)
        record_property("notebook_seconds", seconds)
        record_property("notebook_peak_bytes", peak)
        mem = "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"
        print(f"{path.name}: {seconds:.1f} s, kernel peak memory {mem}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "SMOKE RUN" in text, "a notebook must say visibly that it is a smoke run"
    assert os.environ["PSP_LITE_SMOKE"] == "1"
    assert seconds < MAX_SECONDS, f"{path.name} took {seconds:.0f} s in smoke mode"
    assert peak is None or peak < MAX_PEAK_BYTES, \
        f"{path.name}: kernel peak memory {peak / 1e9:.2f} GB in smoke mode (limit 1.5 GB)"


@pytest.mark.notebook
def test_series_fits_the_ci_budget() -> None:
    """Runs after the notebooks above (same module, file order); skipped when none ran."""
    if len(SECONDS) < len(NOTEBOOKS) or not NOTEBOOKS:
        pytest.skip("needs every notebook's smoke run in this session")
    total = sum(SECONDS.values())
    assert total < MAX_SERIES_SECONDS, \
        f"the series took {total:.0f} s in smoke mode (budget {MAX_SERIES_SECONDS:.0f} s)"
