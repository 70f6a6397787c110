"""ruff (configured in pyproject.toml, notebooks included) is clean over the whole project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What the README's lint command checks: `ruff check psp_lite tests notebooks benchmarks scripts`.
PATHS = ("psp_lite", "tests", "notebooks", "benchmarks", "scripts")


def test_ruff_is_clean() -> None:
    paths = [p for p in PATHS if (ROOT / p).exists()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
                            cwd=ROOT, capture_output=True, text=True)
    assert "No module named ruff" not in result.stderr, \
        'ruff is in the test extra: pip install -e ".[test]"'
    assert result.returncode == 0, result.stdout + result.stderr
