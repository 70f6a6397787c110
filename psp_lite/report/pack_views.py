"""What the notebooks show of a results pack (`psp_lite.store.packs`): one line on where its numbers
come from, its tables (Markdown) and its figures, each beside the student's own short run.
Every view takes the pack or None (no pack found) and then says how to make one, or shows nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import psp_lite.report.figures as plots
from psp_lite.report.lambda_curves import sweep_curves
from psp_lite.report.readings import spread_reading
from psp_lite.report.stats import finished, summarize, sweep_points, to_markdown
from psp_lite.store.packs import Pack, default_path
from psp_lite.training.history import Groups

#: What a pack's experiments show, for `describe`.
EXPERIMENT_TITLES = {"fig2": "Fig. 2", "fig3": "Fig. 3", "table1": "Table 1",
                     "sweep": "the λ sweep"}
HOW_TO = ("make one on a GPU with `psp-lite reproduce all --out results` (or in Colab with a GPU "
          "runtime), or point $PSP_LITE_RESULTS at one")


def _when(manifest: Mapping[str, Any]) -> str:
    minutes = manifest["wall_seconds"] / 60
    code = manifest["code_version"]
    return (f"computed on {manifest['device']} on {manifest['date'][:10]} in {minutes:.1f} min "
            f"(psp-lite {code.get('psp_lite', '?')}, git {code.get('git', 'unknown')})")


def _protocol(groups: Groups) -> str:
    """e.g. 'LeNet5 on mnist: none / l2 / psp, 10 seeds x 50 epochs, all training images'."""
    first = next(iter(groups.values()))[0].config
    seeds = max(len(hs) for hs in groups.values())
    size = (f"a {first.train_subset}-image training subset" if first.train_subset
            else "all training images")
    names = " / ".join(groups) if len(groups) <= 4 else f"{len(groups)} settings"
    return (f"{first.model} on {first.dataset}: {names}, {seeds} seed(s) x {first.epochs} "
            f"epochs, {size}")


def describe_pack(pack: Pack | None, experiment: str | None = None) -> str:
    """One line saying where the pack's numbers come from (device, date, seeds, epochs), for
    `experiment` if given; without a pack, one line on how to make one."""
    if pack is None:
        return f"No results pack found in {default_path()}: {HOW_TO}."
    head = ("SMOKE results pack (tiny synthetic stand-in runs: they show the pipeline works, "
            "not what PSP does)" if pack.smoke else "Full-length results pack")
    what = ""
    if experiment is not None:
        name = EXPERIMENT_TITLES.get(experiment, experiment)
        what = f"; {name}: {_protocol(pack.results(experiment))}"
    return f"{head} in {pack.path}, {_when(pack.manifest)}{what}."


def pack_title(pack: Pack, experiment: str) -> str:
    """A short figure title for the pack's `experiment`."""
    groups = pack.results(experiment)
    first = next(iter(groups.values()))[0].config
    seeds = max(len(hs) for hs in groups.values())
    smoke = "SMOKE " if pack.smoke else ""
    return (f"{smoke}results pack: {first.dataset}, {seeds} seeds x {first.epochs} epochs\n"
            f"{pack.manifest['device']}, {pack.manifest['date'][:10]}")


def summary_table(pack: Pack | None, experiment: str) -> str:
    """The pack's late-epoch test errors of `experiment` beside the paper's (Markdown), as
    `report.stats.to_markdown` gives them; "" without a pack."""
    if pack is None:
        return ""
    return to_markdown(summarize(finished(pack.results(experiment))))


def sweep_table(pack: Pack | None) -> str:
    """The pack's λ sweep as Markdown: per λ the late-epoch test error, mean ± std over seeds,
    one column per regularizer (diverged runs left out and counted); "" without a pack."""
    if pack is None:
        return ""
    groups = pack.results("sweep")
    points = sweep_points(groups)
    first = next(iter(groups.values()))[0].config
    diverged = sum(h.diverged_at is not None for hs in groups.values() for h in hs)

    def cell(errors: list[float] | None) -> str:
        if not errors:
            return "diverged" if errors is not None else "—"
        spread = f" ± {np.std(errors):.2f}" if len(errors) > 1 else ""
        return f"{np.mean(errors):.2f}{spread} ({len(errors)})"

    regs = [r for r in ("psp", "l2") if r in points]
    lams = sorted({lam for r in regs for lam, _ in points[r]} |
                  {h.config.lam for hs in groups.values() for h in hs if h.config.lam})
    lines = [f"Test error % (mean ± std over seeds, seeds in brackets), {first.dataset}, "
             f"{first.epochs} epochs, averaged over the late epochs"
             + (f"; {diverged} run(s) diverged" if diverged else "") + ":", "",
             "| λ | " + " | ".join(f"{'PSP' if r == 'psp' else r}" for r in regs) + " |",
             "|---" * (len(regs) + 1) + "|"]
    if "none" in points:
        base = cell(points["none"][0][1])
        lines.append("| 0 (no regularization) | " + " | ".join([base] * len(regs)) + " |")
    for lam in lams:
        cells = [cell(dict(points[r]).get(lam, [] if any(
            h.config.regularizer == r and h.config.lam == lam for hs in groups.values()
            for h in hs) else None)) for r in regs]
        lines.append(f"| {lam:.2g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pack_figure(pack: Pack | None, experiment: str, own: Any = None) -> Any:
    """The pack's figure for `experiment` (a matplotlib Figure), beside `own` (the student's
    results, or for "sweep" their `SweepResult`) when given; None without a pack.

    fig2 / table1: test error and <z^2> per epoch; fig3: the weight histograms; sweep: the
    late-epoch test error vs λ with the seeds' spread.
    """
    if pack is None:
        return None
    groups = pack.results(experiment)
    if experiment == "fig3":
        return plots.weight_histograms(groups, smoke=pack.smoke)
    if experiment == "sweep":
        return sweep_curves(groups, own=own, title=pack_title(pack, experiment))
    return plots.beside(finished(groups), own, theirs_title=pack_title(pack, experiment),
                        smoke=pack.smoke)


def sweep_beside_pack(pack: Pack | None, own: Any) -> tuple[str, Any]:
    """(caption, figure) for the student's sweep `own` beside the pack's λ sweep: the caption
    names what the figure shows, and without a pack it says so (and how to make one) and the
    figure is None, so no line ever announces a figure that is not there."""
    if pack is None:
        return (f"No results pack, so your sweep is shown alone (above). To see it beside the "
                f"full-length one: {HOW_TO}.", None)
    caption = (f"Your sweep (dotted, {own.seeds} seed(s), {own.epochs} epochs) over the results "
               f"pack's (solid): {_protocol(pack.results('sweep'))}. Both use the same "
               "late-epoch rule; the bands are min-max over seeds.")
    return caption, pack_figure(pack, "sweep", own=own)


def spread_table(pack: Pack | None) -> str:
    """The spread of the pack's Fig. 3 weights per layer (Markdown, mean over its seeds) and
    what it shows beside the paper's description; "" without a pack."""
    if pack is None:
        return ""
    rows = plots.weight_spread(pack.results("fig3"))
    return (plots.spread_markdown(rows) + "\n"
            + spread_reading(rows, smoke=pack.smoke) + "\n")
