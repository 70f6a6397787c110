"""What each `psp-lite` command does once its arguments are checked: train (through the cache),
print the tables beside the paper's, write the figures; say how long is left and where an
output could not be written."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import torch
from tqdm.auto import tqdm

import psp_lite.experiments as experiments
from psp_lite.cli.options import (
    QUICK_WORDS,
    TARGETS,
    check_dataset_fits,
    lambdas,
    runner_from_cli,
)
from psp_lite.data import CATALOG
from psp_lite.device import describe, device_name, pick_device
from psp_lite.experiments.comparison import protocol_note
from psp_lite.experiments.full_length import (
    EXPERIMENT_DATASETS,
    SMOKE,
    note_figure,
    note_table,
    plan,
    train_plan,
    write_figures,
)
from psp_lite.experiments.lambda_sweep import (
    sweep,
    sweep_configs,
)
from psp_lite.experiments.smoke import is_smoke
from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.report import figures as plots
from psp_lite.report import pack_views
from psp_lite.report.lambda_curves import u_curve
from psp_lite.report.stats import finished, summarize, to_markdown, write_table
from psp_lite.runners.outcomes import Outcome
from psp_lite.runners.spec import Runner
from psp_lite.store import packs as results
from psp_lite.training.checks import writable_folder
from psp_lite.training.config import QUICK, QUICK_LAMS


class OutputNotWritten(Exception):
    """Training finished (its runs are cached) but an output file could not be written."""


@contextmanager
def writing_outputs() -> Iterator[None]:
    """Turn an OSError while writing results into `OutputNotWritten`, naming the file."""
    try:
        yield
    except OSError as error:
        where = error.filename or "the output folder"
        raise OutputNotWritten(
            f"could not write {where} ({error.strerror or error}); the trained runs are cached, "
            "so the same command with a writable --out writes the results without "
            "retraining.") from None


def duration(seconds: float) -> str:
    """'40 s', '3 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class Estimate:
    """An `on_result` callback that says once, after the first run that took time, about how
    long the remaining runs will take: the time per trained run so far times the runs left. A
    run that ends within `CACHED_S` of the one before came from the cache and is not counted as
    trained (else a cached start would promise a quick finish)."""

    CACHED_S = 0.25

    def __init__(self, total: int) -> None:
        self.total, self.done, self.trained, self.said = total, 0, 0, False
        self.start = self.last = time.perf_counter()

    def __call__(self, i: int, outcome: Outcome | None) -> None:
        now = time.perf_counter()
        self.done += 1
        self.trained += now - self.last >= self.CACHED_S
        self.last = now
        elapsed = now - self.start
        if self.said or self.done >= self.total or elapsed < 1.0 or not self.trained:
            return
        self.said = True
        left = elapsed / self.trained * (self.total - self.done)
        tqdm.write(f"psp-lite: {self.done}/{self.total} runs in {duration(elapsed)}; about "
                   f"{duration(left)} left", file=sys.stderr)


def device_for(requested: str | None, runner: Runner) -> torch.device | str:
    """The device asked for: here, checked to be present (the best one when none is asked for);
    for Ray, only checked to be a device name ("auto" when none), since the workers have the
    hardware."""
    return pick_device(requested) if runner.kind == "local" else device_name(requested)


def where_it_runs(device: object, runner: Runner) -> str:
    """'cpu (2 threads)' or 'Ray (started on this machine)', for a command's first line."""
    if runner.kind == "local":
        return describe(device)
    return f"Ray ({runner.address or 'started on this machine'})"


def reproduce(args: argparse.Namespace) -> list[Path]:
    """Train what `args.target` needs and write its figures and table; return the paths."""
    matplotlib.use("Agg")
    if args.target == "all":
        return reproduce_all(args)
    if args.smoke:
        raise ValueError("--smoke applies to `reproduce all`; for a quick check of one target "
                         "use --dataset synthetic-mnist --epochs 1.")
    default_dataset, regularizers = TARGETS[args.target]
    dataset = args.dataset or default_dataset
    models = args.models if args.target == "table2" else [None]
    check_dataset_fits(args.target, dataset, [m or "lenet5" for m in models])
    runner = runner_from_cli(args)  # a missing Ray is refused before anything runs
    device = device_for(args.device, runner)  # so is an absent device
    out = writable_folder(args.out, "--out")
    data = None if CATALOG[dataset].stand_in_for else experiments.choose_dataset(
        dataset, args.data_dir, smoke=False)  # a missing dataset: one error, before training
    overrides = dict(QUICK.get(dataset, {})) if args.quick else {}
    lams = dict(QUICK_LAMS.get(dataset, {})) if args.quick else {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
        if dataset in ("cifar10", "synthetic-cifar10"):  # the paper's lr schedule, compressed
            # to fit (as notebook 07)
            overrides.update(experiments.cifar_schedule(args.epochs))
    seeds = tuple(range(args.seeds or 1))
    print(f"psp-lite reproduce {args.target}: {dataset}, seeds {list(seeds)}, "
          f"{overrides or 'paper protocol'}, on {where_it_runs(device, runner)}", file=sys.stderr)
    results, rows, by_model = {}, [], {}
    estimate = Estimate(len(models) * len(regularizers) * len(seeds))
    for model in models:
        results = experiments.compare(dataset, regularizers, seeds=seeds, model=model,
                                      data_dir=args.data_dir, device=args.device,
                                      progress=not args.no_progress, runner=runner,
                                      on_result=estimate,
                                      lams={r: lam for r, lam in lams.items()
                                            if r in regularizers}, **overrides)
        rows += summarize(results)
        by_model[model] = results
        print(data_line(results, data), file=sys.stderr)
    with writing_outputs():
        return write_reproduced(args.target, out, results, rows, by_model)


def data_line(results: dict, data: experiments.DatasetChoice | None) -> str:
    """'data: ...': where the data was found now; runs from the cache that were trained on data
    found elsewhere (same images, checked by the cache key) say so."""
    notes = [h.data_note.split("; subset")[0] for hs in results.values() for h in hs]
    if data is None:
        return f"data: {notes[0]}"
    now = data.note.removeprefix("data: ")
    elsewhere = sorted({n for n in notes if n != now})
    if not elsewhere:
        return f"data: {now}"
    return (f"data: {now}; {sum(n != now for n in notes)} of the {len(notes)} runs came from the "
            f"cache, trained on the same images from {'; '.join(elsewhere)}")


def write_reproduced(target: str, out: Path, results: dict, rows: list,
                     by_model: dict) -> list[Path]:
    """Write `target`'s table (with a line on what the runs trained on) and figures."""
    import matplotlib.pyplot as plt

    print(to_markdown(rows))  # shown even if writing fails below
    note = protocol_note(results)
    written = list(write_table(rows, out / target))
    note_table(written[0], note)
    if target == "fig3":
        written.append(out / "fig3_spread.md")
        written[-1].write_text(plots.spread_markdown(plots.weight_spread(results)))
    figures = {
        "fig2": {"fig2a_test_error": plots.test_error_curves, "fig2b_z2": plots.z2_curves},
        "fig3": {"fig3_weights": plots.weight_histograms},
        "table1": {"table1_test_error": plots.test_error_curves, "table1_z2": plots.z2_curves},
        "table2": {"table2_curves": lambda _: plots.curves_by_model(by_model),
                   "table2_bars": lambda _: plots.comparison_bars(rows)},
    }[target]
    for name, draw in figures.items():
        fig = note_figure(draw(results), note)
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(out / f"{name}.png")
    return written


def reproduce_all(args: argparse.Namespace) -> list[Path]:
    """`psp-lite reproduce all`: train the plan, write the pack into `--out` and the figures
    into `--out`/figures; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    if args.dataset is not None:
        raise ValueError("reproduce all trains each experiment on its own dataset (Fig. 2 and 3: "
                         "MNIST; Table 1 and the λ sweep: Fashion-MNIST), so --dataset does not "
                         "apply; drop it, or use it with one target (e.g. reproduce table1 "
                         "--dataset mnist).")
    smoke = bool(getattr(args, "smoke", False)) or is_smoke()
    runner = runner_from_cli(args)
    device = device_for(args.device, runner)
    out = writable_folder(args.out, "--out")
    if not smoke:  # every dataset is found (or fetched) before anything is trained
        for dataset in EXPERIMENT_DATASETS.values():
            experiments.choose_dataset(dataset, args.data_dir, smoke=False)
    if isinstance(device, str):  # Ray resolves "auto" on its workers' hardware
        plan_device = device
    else:
        plan_device = device.type if args.device is None else str(device)
    the_plan = plan(seeds=args.seeds, epochs=args.epochs, quick=args.quick, smoke=smoke,
                    device=plan_device)
    runs = len({c for groups in the_plan.values() for cs in groups.values() for c in cs})
    print(f"psp-lite reproduce all: {runs} runs ({', '.join(the_plan)}) on "
          f"{where_it_runs(device, runner)}"
          f"{' (SMOKE: synthetic stand-in data, tiny subsets)' if smoke else ''}",
          file=sys.stderr)
    start = time.perf_counter()
    trained = train_plan(the_plan, data_dir=args.data_dir, progress=not args.no_progress,
                         runner=runner, on_result=Estimate(runs))
    seconds = time.perf_counter() - start
    if smoke:
        protocol = "smoke (synthetic stand-in images, tiny subsets)"
    elif args.quick:
        protocol = f"quick (--quick: {args.seeds or 1} seed(s), {QUICK_WORDS})"
    elif args.seeds or args.epochs:
        protocol = f"shortened (--seeds {args.seeds}, --epochs {args.epochs})"
    else:
        protocol = "the authors' full length"
    notes = sorted({h.data_note for groups in trained.values() for hs in groups.values()
                    for h in hs if h.data_note})
    extra = {"device": where_it_runs(device, runner), "wall_seconds": seconds, "smoke": smoke,
             "protocol": protocol, "data_notes": notes}
    if smoke:
        extra["stand_ins"] = {name: f"{SMOKE['dataset']} stands in for {real}"
                              for name, real in {**EXPERIMENT_DATASETS,
                                                 "sweep": "fashion-mnist"}.items()}
    with writing_outputs():
        written = [results.write_pack(trained, out, manifest_extra=extra)]
        pack = results.load_pack(out)
        written += write_figures(pack, out / "figures")
    print(pack_views.describe_pack(pack))
    for name in ("fig2", "table1"):
        print(to_markdown(summarize(finished(pack.results(name)))))
    return written


def sweep_command(args: argparse.Namespace) -> list[Path]:
    """`psp-lite sweep`: train, print the table, write the table and the U-curve; the paths."""
    import matplotlib

    matplotlib.use("Agg")
    psp, l2 = lambdas(args.psp_lambdas, "--psp-lambdas"), lambdas(args.l2_lambdas, "--l2-lambdas")
    runner = runner_from_cli(args)
    device = device_for(args.device, runner)
    out = writable_folder(args.out, "--out")
    grid = dict(epochs=args.epochs, seed=args.seed, train_subset=args.train_subset or None,
                test_subset=args.test_subset or None, device=args.device)
    runs = len(sweep_configs(args.dataset, psp, l2, **grid))  # every value checked up front
    print(f"psp-lite sweep: {args.dataset}, {runs} runs of {args.epochs} epoch(s), seed "
          f"{args.seed}, on {where_it_runs(device, runner)}", file=sys.stderr)
    result = sweep(args.dataset, psp, l2, data_dir=args.data_dir, progress=not args.no_progress,
                   runner=runner, on_result=Estimate(runs), **grid)
    table = result.table()
    print(f"Test error (%), mean of {result.late_window()} of {result.epochs}, {args.dataset}, "
          f"seed {args.seed}:")
    print(table)
    for reg in WITH_LAMBDA:
        if result.lambdas(reg):
            lam, err = result.best(reg)
            print(f"lowest {short_name(reg)}: {err:.2f} % at λ={lam:g}")
    md, png = out / "sweep_table.md", out / "sweep_u_curve.png"
    with writing_outputs():
        md.write_text(table)
        u_curve(result).savefig(png, dpi=120, bbox_inches="tight")
    return [md, png]
