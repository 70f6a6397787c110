"""The report layer: histories in, numbers, verdicts and figures out. Nothing here trains.

* `stats`: late-epoch test error over seeds beside the paper's (rows, Markdown, CSV).
* `effect`: is PSP's gap to a baseline resolved? (paired seeds, standard errors).
* `readings`: one-paragraph verdicts that claim only what the numbers show.
* `figures`: the paper's figures (Figs. 2-3, Table 2's bars, a pack beside the student's run).
* `lambda_curves`: test error vs lambda, each regularizer on its own lambda axis.
* `pack_views`: what the notebooks show of a results pack.
* `style`: the regularizers' legend labels and colours, and `readable`: every teaching and
  report figure readable when projected (fonts >= 9 pt, 100 dpi, at most 9 in wide, legends
  off the data).
"""

from psp_lite.report.figures import (
    beside,
    comparison_bars,
    curves_by_model,
    spread_markdown,
    test_error_curves,
    weight_histograms,
    weight_spread,
    z2_curves,
)
from psp_lite.report.lambda_curves import sweep_curves, u_curve
from psp_lite.report.pack_views import (
    describe_pack,
    pack_figure,
    spread_table,
    summary_table,
    sweep_beside_pack,
    sweep_table,
)
from psp_lite.report.readings import reading, spread_reading, sweep_reading, z2_reading
from psp_lite.report.stats import SummaryRow, finished, summarize, timing, to_markdown, write_table

__all__ = ["SummaryRow", "beside", "comparison_bars", "curves_by_model", "describe_pack",
           "finished", "pack_figure", "reading", "spread_markdown", "spread_reading",
           "spread_table", "summarize", "summary_table", "sweep_beside_pack", "sweep_curves",
           "sweep_reading", "sweep_table", "test_error_curves", "timing", "to_markdown", "u_curve",
           "weight_histograms", "weight_spread", "write_table", "z2_curves", "z2_reading"]
