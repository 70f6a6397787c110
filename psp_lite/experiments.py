"""The paper's experiments as functions: train each regularizer over seeds, summarize beside the
paper's numbers. Shared by the notebooks 04-07 and `psp-lite reproduce`."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psp_lite.data import load_dataset
from psp_lite.device import pick_device
from psp_lite.paper import authors_notebook_error, paper_error
from psp_lite.train import RunHistory, paper_config, run

Results = dict[str, list[RunHistory]]  # regularizer -> one history per seed


def compare(
    dataset: str,
    regularizers: tuple[str, ...] = ("none", "l2", "psp"),
    *,
    seeds: tuple[int, ...] = (0,),
    model: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    **overrides,
) -> Results:
    """Train (or load from the cache) every regularizer x seed under the paper's protocol.

    `overrides` replace protocol fields (epochs, train_subset, lam, ...). The data is loaded once.
    """
    device = pick_device(overrides.pop("device", None))
    configs = {r: paper_config(dataset, r, model, device=device.type, **overrides)
               for r in regularizers}
    first = next(iter(configs.values()))
    data = load_dataset(dataset, data_dir, device=device, train_subset=first.train_subset,
                        test_subset=first.test_subset)
    return {r: [run(dataclasses.replace(c, seed=s), data=data, progress=progress) for s in seeds]
            for r, c in configs.items()}


def late_epochs(epochs: int) -> int:
    """How many final epochs a summary averages: epochs 31..end as the authors do when there
    are more than 40, else the last 40 % (at least 1)."""
    return epochs - 30 if epochs > 40 else max(1, round(0.4 * epochs))


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


def summarize(results: Results, last: int | None = None) -> list[SummaryRow]:
    """One row per regularizer: our late-epoch test error beside the paper's."""
    rows = []
    for regularizer, histories in results.items():
        c = histories[0].config
        n = len(histories[0].test_error)
        k = last or late_epochs(n)
        per_seed = [h.final_error(k) for h in histories]
        rows.append(SummaryRow(
            c.dataset, c.model, regularizer, c.lam, len(histories), n, f"{n - k + 1}-{n}",
            float(np.mean(per_seed)), float(np.std(per_seed)),
            paper_error(c.dataset, c.model, regularizer),
            authors_notebook_error(c.dataset, c.model, regularizer),
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
