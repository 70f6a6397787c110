"""Histories in, numbers out: each regularizer's late-epoch test error over seeds beside the
paper's, as rows, Markdown and CSV; how long the runs took. Nothing here trains."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psp_lite.paper import authors_notebook_error, paper_error
from psp_lite.training.history import Groups, late_epochs


def timing(results: Groups) -> str:
    """How long the runs took and on what device (as recorded when each run was trained)."""
    histories = [h for hs in results.values() for h in hs]
    if not histories:
        return "no runs."
    devices = sorted({h.device for h in histories})
    parts = []
    for reg, hs in results.items():
        per_epoch = [s for h in hs for s in h.seconds]
        parts.append(f"{reg} {np.mean(per_epoch):.1f} s/epoch")
    total = sum(sum(h.seconds) for h in histories)
    model = histories[0].config.model
    return (f"{len(histories)} run(s) of {model}, {len(histories[0].seconds)} epoch(s) each, "
            f"trained on {' / '.join(devices)}: {', '.join(parts)}; {total / 60:.1f} min of "
            "training in all (a cached run reports the time it took when it was trained).")


@dataclass
class SummaryRow:
    dataset: str
    model: str
    regularizer: str
    lam: float
    seeds: int
    epochs: int
    averaged_epochs: str  # e.g. "31-50"
    ours_mean: float  # test error %, mean over the averaged epochs and seeds
    ours_std: float  # std over seeds of the per-seed mean
    paper: float | None
    authors_notebook: float | None
    train_size: int | None = None  # the train subset, None for the whole training set


def summarize(results: Groups, last: int | None = None) -> list[SummaryRow]:
    """One row per regularizer: our late-epoch test error beside the paper's.

    Averaged over the `last` epochs; by default those after the last learning-rate drop when
    the schedule has one (CIFAR-10), else `late_epochs`.
    """
    rows = []
    for regularizer, histories in results.items():
        c = histories[0].config
        n = len(histories[0].test_error)
        drops = [m for m in c.lr_milestones if m < n]
        k = last or (n - max(drops) if drops else late_epochs(n))
        per_seed = [h.final_error(k) for h in histories]
        rows.append(SummaryRow(
            c.dataset, c.model, regularizer, c.lam, len(histories), n, f"{n - k + 1}-{n}",
            float(np.mean(per_seed)), float(np.std(per_seed)),
            paper_error(c.dataset, c.model, regularizer),
            authors_notebook_error(c.dataset, c.model, regularizer),
            c.train_subset,
        ))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: list[SummaryRow]) -> str:
    """A Markdown table, ours and the paper's side by side (labelled)."""
    lines = [
        "| dataset | model | regularizer | λ | seeds | epochs averaged | ours: test error % "
        "| paper: test error % | authors' notebook % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f" ± {r.ours_std:.2f}" if r.seeds > 1 else ""
        lines.append(
            f"| {r.dataset} | {r.model} | {r.regularizer} | {r.lam:g} | {r.seeds} "
            f"| {r.averaged_epochs} of {r.epochs} | {r.ours_mean:.2f}{spread} | {_fmt(r.paper)} "
            f"| {_fmt(r.authors_notebook)} |"
        )
    return "\n".join(lines) + "\n"


def write_table(rows: list[SummaryRow], path_stem: Path) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.csv`; return both paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = path_stem.with_suffix(".md"), path_stem.with_suffix(".csv")
    md.write_text(to_markdown(rows))
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in dataclasses.fields(SummaryRow)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    return md, csv_path


def finished(groups: Groups) -> Groups:
    """`groups` without the runs that diverged (and without groups left empty)."""
    kept = {g: [h for h in hs if h.diverged_at is None] for g, hs in groups.items()}
    return {g: hs for g, hs in kept.items() if hs}


def sweep_points(groups: Groups) -> dict[str, list[tuple[float, list[float]]]]:
    """Per regularizer ("none", "psp", "l2"): (λ, late-epoch mean test error of each finished
    seed), λ ascending; the window is `late_epochs` of the run's length."""
    points: dict[str, dict[float, list[float]]] = {}
    for hs in finished(groups).values():
        for h in hs:
            c = h.config
            points.setdefault(c.regularizer, {}).setdefault(c.lam, []).append(
                h.final_error(late_epochs(c.epochs)))
    return {reg: sorted(by_lam.items()) for reg, by_lam in points.items()}
