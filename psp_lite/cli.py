"""`psp-lite reproduce fig2|fig3|table1|table2`: the paper's results measured beside its own;
`psp-lite reproduce all`: all of them at the authors' full length, as a results pack;
`psp-lite sweep`: test error vs lambda for PSP and l2 (psp_lite.experiments.lambda_sweep)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import matplotlib
import torch
from tqdm.auto import tqdm

import psp_lite.experiments as experiments
import psp_lite.training.checks as checks
from psp_lite.data import CATALOG, DatasetNotFoundError, canonical_dataset
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
    DEFAULT_EPOCHS,
    DEFAULT_LAMBDAS,
    DEFAULT_TEST_SUBSET,
    DEFAULT_TRAIN_SUBSET,
    sweep,
    sweep_configs,
)
from psp_lite.experiments.smoke import is_smoke
from psp_lite.models import MODEL_INPUT_SHAPES
from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.report import figures as plots
from psp_lite.report import pack_views
from psp_lite.report.stats import finished, summarize, to_markdown, write_table
from psp_lite.runners.outcomes import Outcome
from psp_lite.runners.ray_cluster import CLUSTER_EXTRA, RayUnavailable, import_ray
from psp_lite.runners.spec import Runner
from psp_lite.store import packs as results
from psp_lite.store.cache import CacheNotWritableError, cache_dir
from psp_lite.training.checks import int_arg_up_to, positive_int_arg, writable_folder
from psp_lite.training.config import QUICK, QUICK_LAMS
from psp_lite.training.history import TrainingDiverged

#: target -> (default dataset, regularizers compared)
TARGETS = {
    "fig2": ("mnist", ("none", "l2", "psp")),
    "fig3": ("mnist", ("l2", "psp")),
    "table1": ("fashion-mnist", ("none", "l2", "psp")),
    "table2": ("cifar10", ("l2", "psp")),
}
CIFAR_MODELS = ("resnet18", "mobilenetv2", "allcnnc")
#: The most seeds `--seeds` takes (the authors use 10); more is a typo, not a protocol.
MAX_SEEDS = 1000
#: What --quick trains, in words, from `QUICK` itself.
QUICK_WORDS = "; ".join(
    f"{CATALOG[d].title} {q['epochs']} epochs on {q['train_subset']:,} training images"
    for d, q in QUICK.items())


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, `psp-lite: error: ...`, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"psp-lite: error: {message} (see {self.prog} --help)\n")


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


def lambda_arg(text: str) -> float | None:
    """argparse type: a lambda, or "none" (None: no runs of that regularizer)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def lambdas(values: Sequence[float | None], option: str) -> list[float]:
    """The lambdas of `option`; "none" alone means no lambda at all."""
    if None in values:
        if len(values) > 1:
            raise ValueError(f"{option} none means no runs; give it alone, not with lambdas.")
        return []
    return list(values)  # type: ignore[arg-type]


def check_data_dir(folder: Path | None) -> None:
    """Refuse a --data-dir that does not exist; say so when it is empty."""
    if folder is None:
        return
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"--data-dir {folder} {what}; pass the folder holding the datasets "
                         "(e.g. ROOT with ROOT/FashionMNIST/raw/), or leave it out.")
    if not any(folder.iterdir()):
        print(f"psp-lite: note: --data-dir {folder} is empty; looking in PSP_LITE_DATA and the "
              "system folders next (found files are copied into it).", file=sys.stderr)


def duration(seconds: float) -> str:
    """'40 s', '3 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class Estimate:
    """An `on_result` callback that says once, after the first run that took time, about how
    long the remaining runs will take (elapsed time per run so far times the runs left)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.said = total, 0, False
        self.start = time.perf_counter()

    def __call__(self, i: int, outcome: Outcome) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        if self.said or self.done >= self.total or elapsed < 1.0:
            return
        self.said = True
        left = elapsed / self.done * (self.total - self.done)
        tqdm.write(f"psp-lite: {self.done}/{self.total} runs in {duration(elapsed)}; about "
                   f"{duration(left)} left", file=sys.stderr)


def dataset_name(text: str) -> str:
    """argparse type: one of psp_lite.data.DATASETS (spelling variants accepted)."""
    try:
        return canonical_dataset(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None


def check_dataset_fits(target: str, dataset: str, models: Sequence[str]) -> None:
    """ValueError (before any data is loaded) when `target`'s networks cannot take `dataset`'s
    images, e.g. table2's CIFAR-10 networks on 1x28x28 Fashion-MNIST."""
    shape = CATALOG[dataset].input_shape
    for model in models:
        wanted = MODEL_INPUT_SHAPES[model]
        if wanted != shape:
            fits = [d.name for d in CATALOG.values() if d.input_shape == wanted]
            raise ValueError(
                f"{target} trains {model} on {'x'.join(map(str, wanted))} images but {dataset} "
                f"has {'x'.join(map(str, shape))} images; use --dataset "
                f"{' or '.join(fits)} for {target}.")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="psp-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="train and write a figure or table of the paper "
                         "(fig2, fig3, table1, table2), or all of them as a results pack (all)")
    rep.add_argument("target", choices=[*sorted(TARGETS), "all"],
                     help="all: Fig. 2, Fig. 3, Table 1 and the λ sweep at the authors' full "
                     "length, written as a results pack into --out")
    rep.add_argument("--dataset", type=dataset_name,
                     help="override the target's dataset (e.g. fashion-mnist)")
    rep.add_argument("--epochs", type=checks.positive_int_arg,
                     help="epochs per run (default: the paper's)")
    rep.add_argument("--seeds", type=int_arg_up_to(MAX_SEEDS),
                     help="number of seeds, seeds 0..N-1 (default 1; all: the authors' 10, the "
                     f"sweep 3; at most {MAX_SEEDS})")
    rep.add_argument("--quick", action="store_true",
                     help=f"a short protocol on a subset of the real data: {QUICK_WORDS}; one "
                     "seed unless --seeds, and --epochs still apply")
    rep.add_argument("--models", nargs="+", choices=CIFAR_MODELS, default=list(CIFAR_MODELS),
                     help="table2 only: which CIFAR-10 networks")
    rep.add_argument("--data-dir", type=Path, help="an existing folder where the datasets are "
                     "(ROOT/FashionMNIST/raw/ etc., .gz or not) or should go")
    rep.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    rep.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: the best available)")
    rep.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_ray_arguments(rep)
    rep.add_argument("--smoke", action="store_true",
                     help="all only: tiny runs on synthetic stand-in images (as PSP_LITE_SMOKE=1)")
    sweep_parser = add_sweep_parser(sub)
    parser.set_defaults(subparsers={"reproduce": rep, "sweep": sweep_parser})
    return parser


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
                         runner=runner)
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


def add_sweep_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `psp-lite sweep` subcommand's arguments."""
    p = sub.add_parser("sweep", help="train LeNet5 over a grid of lambdas (PSP and l2)",
                       description="Train LeNet5 over a grid of lambdas for PSP and l2 plus no "
                       "regularization, reusing the run cache (stop with Ctrl-C, run again to "
                       "resume); print final test error vs lambda and plot the U-curve.")
    p.add_argument("--dataset", default="fashion-mnist",
                   choices=("mnist", "fashion-mnist", "synthetic-mnist"))
    p.add_argument("--epochs", type=positive_int_arg, default=DEFAULT_EPOCHS,
                   help=f"epochs per run (default {DEFAULT_EPOCHS})")
    p.add_argument("--psp-lambdas", type=lambda_arg, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="PSP lambdas (default: 9 values, 1e-5 to 1e-1; none: no "
                   "PSP)")
    p.add_argument("--l2-lambdas", type=lambda_arg, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="l2 weight decays (default: as for PSP; none: no l2)")
    p.add_argument("--train-subset", type=int, default=DEFAULT_TRAIN_SUBSET,
                   help=f"training images used (default {DEFAULT_TRAIN_SUBSET}; 0: all)")
    p.add_argument("--test-subset", type=int, default=DEFAULT_TEST_SUBSET,
                   help=f"test images used (default {DEFAULT_TEST_SUBSET}; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="the runs' seed, 0..2**32-1 (default 0)")
    p.add_argument("--data-dir", type=Path, help="an existing folder where the datasets are "
                   "(ROOT/FashionMNIST/raw/ etc., .gz or not) or should go")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: the best available)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_ray_arguments(p)
    return p


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
        plots.u_curve(result).savefig(png, dpi=120, bbox_inches="tight")
    return [md, png]


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """`--ray [ADDRESS]`, `--gpus-per-run`, `--cpus-per-run` (for `reproduce` and `sweep`)."""
    group = parser.add_argument_group("cluster (needs the extra: " + CLUSTER_EXTRA + ")")
    group.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="train the runs as Ray tasks: alone, start Ray on this machine; "
                       "'auto' or ray://HOST:10001 joins a running cluster")
    group.add_argument("--gpus-per-run", type=float, metavar="G",
                       help="with --ray: GPUs per run, fractions allowed (default: 1 where the "
                       "cluster has GPUs, else 0)")
    group.add_argument("--cpus-per-run", type=float, metavar="C",
                       help="with --ray: CPUs per run (default 1)")


def runner_from_cli(args: argparse.Namespace) -> Runner:
    """The runner the command line asks for; with --ray, Ray must be importable."""
    resources = {name: value for name, value in (("num_gpus", args.gpus_per_run),
                                                 ("num_cpus", args.cpus_per_run))
                 if value is not None}
    if args.ray is None:
        if resources:
            raise ValueError("--gpus-per-run and --cpus-per-run need --ray.")
        return Runner()
    if not all(math.isfinite(v) for v in resources.values()) \
            or resources.get("num_gpus", 0) < 0 or resources.get("num_cpus", 1) <= 0:
        raise ValueError(f"--gpus-per-run must be a finite number >= 0 and --cpus-per-run one "
                         f"> 0, got {args.gpus_per_run} and {args.cpus_per_run}.")
    import_ray()
    return Runner("ray", args.ray or None, resources or None)


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # a mistyped flag: point to the subcommand's own help
        args.subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        check_data_dir(args.data_dir)
        if args.command == "reproduce":
            for path in reproduce(args):
                print(f"wrote {path}", file=sys.stderr)
        elif args.command == "sweep":
            for path in sweep_command(args):
                print(f"wrote {path}", file=sys.stderr)
        return 0
    except DatasetNotFoundError as error:
        print(f"psp-lite: error: {error.for_cli()}", file=sys.stderr)
        return 2
    except CacheNotWritableError as error:
        reason = getattr(error.__cause__, "strerror", None) or "not writable"
        print(f"psp-lite: error: the run cache folder {cache_dir()} cannot be written "
              f"({reason}); set PSP_LITE_CACHE to a writable folder.", file=sys.stderr)
        return 2
    except OutputNotWritten as error:
        print(f"psp-lite: error: {error}", file=sys.stderr)
        return 1
    except (TrainingDiverged, ValueError) as error:
        one_line = " ".join(line.strip() for line in str(error).splitlines())
        print(f"psp-lite: error: {one_line}", file=sys.stderr)
        return 2
    except RayUnavailable as error:
        print(f"psp-lite: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("psp-lite: interrupted; finished runs are cached and will be reused.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
