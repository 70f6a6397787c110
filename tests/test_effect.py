"""Paired seed gaps: known numbers in, mean, standard error and verdict out."""

from __future__ import annotations

import math

import pytest

from psp_lite.report.effect import gap, gaps_markdown, late_mean, truncations

# three seeds, four epochs; PSP is lower than none by 1, 2 and 3 points in the last two epochs
CURVES = {
    "none": [[20, 18, 17, 17], [21, 19, 18, 18], [22, 20, 19, 19]],
    "psp": [[20, 18, 16, 16], [21, 19, 16, 16], [22, 20, 16, 16]],
    "l2": [[20, 18, 17, 18], [21, 19, 17, 17], [22, 20, 20, 18]],
}


def test_late_mean_averages_the_last_epochs_up_to_the_cut():
    assert late_mean([20, 18, 16, 14], epochs=4, last=2) == 15
    assert late_mean([20, 18, 16, 14], epochs=3, last=2) == 17
    with pytest.raises(ValueError):
        late_mean([1, 2], epochs=3, last=1)


def test_gap_is_paired_by_seed_with_its_standard_error():
    g = gap(CURVES, "none", epochs=4, last=2)
    assert g.mean == pytest.approx(-2.0)
    assert g.stderr == pytest.approx(1.0 / math.sqrt(3))  # diffs -1, -2, -3: sd 1
    assert g.resolved  # 2.0 > 2 * 0.577
    early = gap(CURVES, "none", epochs=2, last=1)
    assert (early.mean, early.resolved) == (0.0, False)


def test_two_seeds_never_resolve():
    two = {k: v[:2] for k, v in CURVES.items()}
    assert not gap(two, "none", 4, 2).resolved


def test_truncations_and_table():
    rows = truncations(CURVES, [2, 4])
    assert [(e, last) for e, last, _ in rows] == [(2, 1), (4, 1)]
    table = gaps_markdown(rows, cost={4: "1 min"})
    assert "| 4 | last 1 | -2.00 ± 0.58 **resolved** |" in table
    assert table.count("\n") == 3
