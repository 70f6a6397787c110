"""Lambda explorer: time from a slider change to the finished redraw (target < 200 ms).

Moves the explorer's real ipywidgets (lambda, epoch, regularizer) through `--changes` changes;
each time covers the callback, the drawing, the PNG encoding and the image widget's update. Two
references are timed on the same states in the same process and printed as ratios:

  full     the explorer's own figure drawn completely (no cached background) and encoded
  plots    a cold redraw from scratch with psp_lite.report: Fig. 2a, Fig. 2b, Fig. 3 (no KDE)
           and the lambda curve as new figures, each saved as PNG

The sweep drawn is the default grid (9 PSP + 9 l2 lambdas + no regularization = 19 runs, 3 weight
snapshots of LeNet5 each: the drawing work of the real thing). By default it is trained on a tiny
synthetic set into a temporary cache (about a minute); `--real` uses notebook 08's sweep from the
user's cache (training it if it is not there: minutes), by default the notebook's default
Fashion-MNIST grid; `--dataset`, `--epochs`, `--train-subset` and `--test-subset` pick the sweep
that notebook 08 was run with, so that its explorer is timed on the machine it runs on (this
replaces the timing cell the notebook used to have).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from redraw_timing import median_ms, time_redraws, tour  # noqa: E402

from psp_lite.experiments.lambda_sweep import sweep
from psp_lite.explorer.widgets import ExplorerState, LambdaExplorer
from psp_lite.report import figures as plots
from psp_lite.report.lambda_curves import u_curve
from psp_lite.training.history import SweepResult, snapshot_for


def plots_redraw(result: SweepResult, state: ExplorerState) -> None:
    """A cold redraw of the same views with psp_lite.report.figures (new figures, PNG each)."""
    h = result.get(state.regularizer, state.lam)
    results = {"none": [result.baseline]}
    if state.lam:
        results[state.regularizer] = [h]
    figures = [plots.test_error_curves(results, paper=False), plots.z2_curves(results, False),
               plots.weight_histograms(results, tuple(results), epoch=snapshot_for(h.weights,
                                                                                    state.epoch),
                                       kde=False),
               u_curve(result, highlight=state.regularizer)]
    for fig in figures:
        fig.savefig(io.BytesIO(), format="png", dpi=100)  # as the explorer shows its image
    plt.close("all")


def full_redraw(explorer: LambdaExplorer, state: ExplorerState) -> None:
    """The explorer's figure drawn completely, without its cached background."""
    explorer.render(state)
    explorer.canvas.print_png(io.BytesIO(), pil_kwargs={"compress_level": 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=60, help="slider changes timed")
    parser.add_argument("--reference-changes", type=int, default=12,
                        help="changes timed for each (slower) reference")
    parser.add_argument("--real", action="store_true",
                        help="notebook 08's sweep from the user's cache (default: its defaults)")
    parser.add_argument("--dataset", default="fashion-mnist", help="with --real: DATASET")
    parser.add_argument("--epochs", type=int, default=None, help="with --real: EPOCHS")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="with --real: TRAIN_SUBSET (default: the notebook's)")
    parser.add_argument("--test-subset", type=int, default=None,
                        help="with --real: TEST_SUBSET (default: the notebook's)")
    args = parser.parse_args()
    if args.real:
        grid = {key: value for key, value in (("epochs", args.epochs),
                                              ("train_subset", args.train_subset),
                                              ("test_subset", args.test_subset))
                if value is not None}
        result = sweep(args.dataset, progress=True, **grid)
    else:
        os.environ["PSP_LITE_CACHE"] = tempfile.mkdtemp(prefix="psp-bench-")
        result = sweep("synthetic-mnist", epochs=3, train_subset=300, test_subset=200,
                       device="cpu", progress=True)
    start = time.perf_counter()
    explorer = LambdaExplorer(result)
    build = time.perf_counter() - start
    explorer.ui()
    time_redraws(explorer, 4)  # first sight of each regularizer draws its background once
    states = tour(explorer, args.changes)
    widget = time_redraws(explorer, args.changes, states)
    full, cold = [], []
    for state in states[:args.reference_changes]:
        t = time.perf_counter()
        full_redraw(explorer, state)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        plots_redraw(result, state)
        cold.append(time.perf_counter() - t)
    fast = median_ms(widget)
    print(f"sweep: {len(result.runs)} runs ({result.base.dataset}), {result.epochs} epochs; "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    print(f"explorer built (histograms of every snapshot) in {build:.2f} s")
    print(f"slider change -> finished redraw: median {fast:.0f} ms, p90 "
          f"{1000 * statistics.quantiles(widget, n=10)[-1]:.0f} ms, max "
          f"{1000 * max(widget):.0f} ms over {len(widget)} changes (target < 200 ms)")
    print(f"full redraw of the same figure:   median {median_ms(full):.0f} ms  "
          f"= {median_ms(full) / fast:.1f}x the slider redraw")
    print(f"cold redraw with psp_lite.report.figures:  median {median_ms(cold):.0f} ms  "
          f"= {median_ms(cold) / fast:.1f}x the slider redraw")


if __name__ == "__main__":
    main()
