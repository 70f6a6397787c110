"""`psp-lite reproduce all`: the authors' LeNet5 protocols at full length, trained through
`psp_lite.runners.run_many` (runs share kernels on a GPU), written as a results pack and figures.

What is trained (the epoch and seed counts are the authors' code's, not the paper's):

* Fig. 2: MNIST, no regularization / l2 (1e-4) / PSP (1e-3), 10 seeds x 50 epochs;
* Fig. 3: the weights of Fig. 2's l2 and PSP networks at their last epoch (the same runs);
* Table 1: Fashion-MNIST, the same three regimes, 10 seeds x 150 epochs;
* the λ sweep (`sweep.sweep_configs`' grid: 9 λ per regularizer plus none) on Fashion-MNIST at
  Table 1's length, on all the data, with 3 seeds.

`--seeds`, `--epochs` and `--quick` shrink it as for the other targets; smoke mode (`--smoke` or
`PSP_LITE_SMOKE=1`) trains tiny runs on synthetic stand-in images, and the manifest says so.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from psp_lite.experiments.comparison import protocol_note
from psp_lite.experiments.lambda_sweep import DEFAULT_LAMBDAS, sweep_configs
from psp_lite.regularizers import REGULARIZERS
from psp_lite.report import figures as plots
from psp_lite.report import pack_views as pack_views
from psp_lite.report.lambda_curves import sweep_curves
from psp_lite.report.stats import finished, summarize, write_table
from psp_lite.runners.cached import run_many
from psp_lite.runners.local import run_configs
from psp_lite.runners.outcomes import OnResult, Outcome
from psp_lite.runners.spec import Runner, as_runner
from psp_lite.store import packs as results
from psp_lite.training.config import AUTHORS_SEEDS, QUICK, RunConfig, paper_config
from psp_lite.training.history import RunHistory

Plan = dict[str, dict[str, list[RunConfig]]]  # experiment -> group -> one config per seed

#: The experiments' real datasets (the sweep runs on Table 1's).
EXPERIMENT_DATASETS = {"fig2": "mnist", "table1": "fashion-mnist"}
#: The authors' seed count for Fig. 2 and Table 1; the sweep uses at most SWEEP_SEEDS.
SEEDS, SWEEP_SEEDS = AUTHORS_SEEDS, 3
#: Smoke mode: synthetic images, tiny subsets, 2 seeds x 2 epochs, three λ per regularizer.
SMOKE = dict(dataset="synthetic-mnist", epochs=2, train_subset=500, test_subset=200, seeds=2,
             lambdas=(1e-4, 1e-3, 1e-2))


def plan(*, seeds: int | None = None, epochs: int | None = None, quick: bool = False,
         smoke: bool = False, device: str = "auto") -> Plan:
    """The configs of every experiment of the pack (see the module's docstring)."""
    n_seeds = seeds or (1 if quick else SMOKE["seeds"] if smoke else SEEDS)
    out: Plan = {}
    for name, real in EXPERIMENT_DATASETS.items():
        dataset = SMOKE["dataset"] if smoke else real
        overrides: dict = {"device": device}
        if smoke:
            overrides.update(epochs=SMOKE["epochs"], train_subset=SMOKE["train_subset"],
                             test_subset=SMOKE["test_subset"])
        elif quick:
            overrides.update(QUICK[real])
        if epochs is not None:
            overrides["epochs"] = epochs
        if not smoke and "epochs" not in overrides:  # MNIST 50, Fashion-MNIST 150 epochs
            overrides["epochs"] = paper_config(real, "none").epochs
        out[name] = {r: [paper_config(dataset, r, **overrides, seed=s) for s in range(n_seeds)]
                     for r in REGULARIZERS}
        if name == "fig2":
            out["fig3"] = {r: out["fig2"][r] for r in ("l2", "psp")}
    table1 = out["table1"]["none"][0]
    lambdas = SMOKE["lambdas"] if smoke else DEFAULT_LAMBDAS
    sweep: dict[str, list[RunConfig]] = {}
    for s in range(min(n_seeds, SWEEP_SEEDS)):
        for c in sweep_configs(table1.dataset, lambdas, lambdas, epochs=table1.epochs, seed=s,
                               train_subset=table1.train_subset,
                               test_subset=table1.test_subset, snapshot_epochs=(),
                               device=device):
            group = "none" if c.regularizer == "none" else f"{c.regularizer} λ={c.lam:g}"
            sweep.setdefault(group, []).append(c)
    out["sweep"] = sweep
    return out


def train_plan(the_plan: Plan, *, data_dir: str | Path | None = None, progress: bool = True,
               runner: str | Runner = "local", on_result: OnResult | None = None
               ) -> dict[str, dict[str, list[RunHistory]]]:
    """Every run of `the_plan`, each trained once (or loaded from the cache): here by
    `run_many`, or as Ray tasks when `runner` says so; `on_result(i, outcome)` as each ends. A
    diverged run keeps its history (marked `diverged_at`); any other failure raises its error."""
    unique = list(dict.fromkeys(c for groups in the_plan.values() for cs in groups.values()
                                for c in cs))
    if as_runner(runner).kind == "local":
        histories = run_many(unique, data_dir=data_dir, progress=progress, on_result=on_result)
    else:
        histories = [_history_of(o) for o in run_configs(unique, runner=runner,
                                                          data_dir=data_dir, progress=progress,
                                                          on_result=on_result,
                                                          desc="reproduce all")]
    trained = dict(zip(unique, histories, strict=True))
    return {name: {g: [trained[c] for c in cs] for g, cs in groups.items()}
            for name, groups in the_plan.items()}


def _history_of(outcome: Outcome) -> RunHistory:
    """A run's history; a diverged run's partial one; any other failure raised."""
    if isinstance(outcome, RunHistory):
        return outcome
    history = getattr(outcome.error, "history", None)
    if outcome.diverged and history is not None:
        return history
    raise outcome.error


def note_figure(fig: Figure, note: str) -> Figure:
    """`fig` with `note` (what the runs trained on) added under its title."""
    if note:
        title = fig.get_suptitle()
        fig.suptitle(f"{title}\n{note}" if title else note, y=1.06 if title else 1.02)
    return fig


def note_table(path: Path, note: str) -> None:
    """Append `note` to the markdown table at `path` as a last line."""
    if note:
        with path.open("a") as f:
            f.write(f"\n_Runs: {note}._\n")


def write_figures(pack: results.Pack, folder: Path) -> list[Path]:
    """The figures and tables of a pack (as `psp-lite reproduce` writes them) into `folder`."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes = {name: protocol_note(pack.results(name))
             for name in ("fig2", "fig3", "table1", "sweep")}
    for name in ("fig2", "table1"):
        groups = finished(pack.results(name))
        rows = summarize(groups)
        written += write_table(rows, folder / name)
        note_table(written[-2], notes[name])
    spread = plots.weight_spread(pack.results("fig3"))
    written.append(folder / "fig3_spread.md")
    written[-1].write_text(plots.spread_markdown(spread))
    written.append(folder / "sweep_table.md")
    written[-1].write_text(pack_views.sweep_table(pack))
    fig2, table1 = (finished(pack.results(n)) for n in ("fig2", "table1"))
    smoke = pack.smoke  # a smoke pack's figures say so across their top
    figures = {  # name: (the experiment, how to draw it)
        "fig2a_test_error": ("fig2", lambda: plots.test_error_curves(fig2, smoke=smoke)),
        "fig2b_z2": ("fig2", lambda: plots.z2_curves(fig2, smoke=smoke)),
        "fig3_weights": ("fig3", lambda: plots.weight_histograms(pack.results("fig3"),
                                                                   smoke=smoke)),
        "table1_test_error": ("table1", lambda: plots.test_error_curves(table1, smoke=smoke)),
        "table1_z2": ("table1", lambda: plots.z2_curves(table1, smoke=smoke)),
        "sweep_u_curve": ("sweep", lambda: sweep_curves(pack.results("sweep"))),
    }
    for name, (experiment, draw) in figures.items():
        fig = note_figure(draw(), notes[experiment])
        fig.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(folder / f"{name}.png")
    return written
