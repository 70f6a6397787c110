"""Smoke mode: `PSP_LITE_SMOKE=1` shrinks every notebook and command to a run of seconds."""

from __future__ import annotations

import os


def is_smoke() -> bool:
    """True when the environment asks for a smoke run (PSP_LITE_SMOKE set to 1/true/yes)."""
    return os.environ.get("PSP_LITE_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full, smoke):
    """`smoke` in smoke mode, else `full`: for a notebook's parameters cell."""
    return smoke if is_smoke() else full


def banner() -> str:
    """One line saying whether this is a smoke run, for the top of a notebook's output."""
    if is_smoke():
        return ("SMOKE RUN (PSP_LITE_SMOKE=1): tiny subsets and 1-2 epochs; numbers below only "
                "show that the code runs, not what PSP does.")
    return "Full run (default sizes; PSP_LITE_SMOKE=1 for a quick run)."
