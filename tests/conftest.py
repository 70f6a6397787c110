"""Session-wide pytest hooks: a table of each notebook's smoke-run time and peak memory."""

from __future__ import annotations

import pytest

Row = tuple[str, float, "int | None", str]  # notebook, seconds, peak bytes, outcome


def notebook_rows(terminalreporter: pytest.TerminalReporter) -> list[Row]:
    """(notebook, seconds, peak bytes, outcome) from the reports of tests/test_notebooks.py."""
    rows = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            props = dict(getattr(report, "user_properties", ()))
            if "notebook_seconds" in props:
                rows.append((props["notebook"], props["notebook_seconds"],
                             props.get("notebook_peak_bytes"), report.outcome))
    return sorted(rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: one line per executed notebook, then the series total."""
    rows = notebook_rows(terminalreporter)
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("notebooks in smoke mode (fresh kernel each)")
    write(f"{'notebook':<44} {'time':>8} {'peak memory':>12}  result")
    for name, seconds, peak, outcome in rows:
        mem = "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"
        write(f"{name:<44} {seconds:>6.1f} s {mem:>12}  {outcome}")
    peaks = [p for _, _, p, _ in rows if p is not None]
    top = f"{max(peaks) / 2**20:.0f} MiB" if peaks else "n/a"
    write(f"{'total (' + str(len(rows)) + ' notebooks)':<44} {sum(r[1] for r in rows):>6.1f} s "
          f"{top:>12}  (largest peak)")
