"""`psp-lite reproduce fig2|fig3|table1|table2`: the paper's results measured beside its own;
`psp-lite sweep`: test error vs lambda for PSP and l2 (psp_lite.experiments.lambda_sweep)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import matplotlib

import psp_lite.experiments as experiments
import psp_lite.training.checks as checks
from psp_lite.data import CATALOG, DatasetNotFoundError, canonical_dataset
from psp_lite.device import describe, pick_device
from psp_lite.experiments.full_length import (
    EXPERIMENT_DATASETS,
    SMOKE,
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
)
from psp_lite.experiments.smoke import is_smoke
from psp_lite.models import MODEL_INPUT_SHAPES
from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.report import figures as plots
from psp_lite.report import pack_views
from psp_lite.report.stats import finished, summarize, to_markdown, write_table
from psp_lite.runners.ray_cluster import CLUSTER_EXTRA, RayUnavailable, import_ray
from psp_lite.runners.spec import Runner
from psp_lite.store import packs as results
from psp_lite.store.cache import CacheNotWritableError
from psp_lite.training.checks import positive_int_arg, writable_folder
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



class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, `psp-lite: error: ...`, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"psp-lite: error: {message} (see {self.prog} --help)\n")


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
    rep = sub.add_parser("reproduce", help="train and write a figure or table of the paper")
    rep.add_argument("target", choices=[*sorted(TARGETS), "all"],
                     help="all: Fig. 2, Fig. 3, Table 1 and the λ sweep at the authors' full "
                     "length, written as a results pack into --out")
    rep.add_argument("--dataset", type=dataset_name,
                     help="override the target's dataset (e.g. fashion-mnist)")
    rep.add_argument("--epochs", type=checks.positive_int_arg,
                     help="epochs per run (default: the paper's)")
    rep.add_argument("--seeds", type=checks.positive_int_arg,
                     help="number of seeds (default 1; all: the authors' 10, the sweep 3)")
    rep.add_argument("--quick", action="store_true",
                     help="one seed, a few epochs on a subset of the real data (minutes on a CPU)")
    rep.add_argument("--models", nargs="+", choices=CIFAR_MODELS, default=list(CIFAR_MODELS),
                     help="table2 only: which CIFAR-10 networks")
    rep.add_argument("--data-dir", type=Path, help="where the datasets are (or should go)")
    rep.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    rep.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    rep.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_ray_arguments(rep)
    rep.add_argument("--smoke", action="store_true",
                     help="all only: tiny runs on synthetic stand-in images (as PSP_LITE_SMOKE=1)")
    add_sweep_parser(sub)
    return parser


def reproduce(args: argparse.Namespace) -> list[Path]:
    """Train what `args.target` needs and write its figures and table; return the paths."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.target == "all":
        return reproduce_all(args)
    if args.smoke:
        raise ValueError("--smoke applies to `reproduce all`; for a quick check of one target "
                         "use --dataset synthetic-mnist --epochs 1.")
    default_dataset, regularizers = TARGETS[args.target]
    dataset = args.dataset or default_dataset
    models = args.models if args.target == "table2" else [None]
    check_dataset_fits(args.target, dataset, [m or "lenet5" for m in models])
    device = pick_device(args.device)  # an absent device is refused before anything runs
    runner = runner_from_cli(args)  # so is a missing Ray, before the output folder is made
    out = writable_folder(args.out, "--out")
    overrides = dict(QUICK.get(dataset, {})) if args.quick else {}
    lams = dict(QUICK_LAMS.get(dataset, {})) if args.quick else {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
        if dataset in ("cifar10", "synthetic-cifar10"):  # the paper's lr schedule, compressed
            # to fit (as notebook 07)
            overrides.update(experiments.cifar_schedule(args.epochs))
    seeds = tuple(range(1 if args.quick else args.seeds or 1))
    where = (describe(device) if runner.kind == "local"
             else f"Ray ({runner.address or 'started on this machine'})")
    print(f"psp-lite reproduce {args.target}: {dataset}, seeds {list(seeds)}, "
          f"{overrides or 'paper protocol'}, on {where}", file=sys.stderr)
    results, rows, by_model = {}, [], {}
    for model in models:
        results = experiments.compare(dataset, regularizers, seeds=seeds, model=model,
                                      data_dir=args.data_dir, device=args.device,
                                      progress=not args.no_progress, runner=runner,
                                      lams={r: lam for r, lam in lams.items()
                                            if r in regularizers}, **overrides)
        rows += summarize(results)
        by_model[model] = results
        note = next(iter(results.values()))[0].data_note
        if note:
            print(f"data: {note}", file=sys.stderr)
    written = list(write_table(rows, out / args.target))
    if args.target == "fig3":
        written.append(out / "fig3_spread.md")
        written[-1].write_text(plots.spread_markdown(plots.weight_spread(results)))
    figures = {
        "fig2": {"fig2a_test_error": plots.test_error_curves, "fig2b_z2": plots.z2_curves},
        "fig3": {"fig3_weights": plots.weight_histograms},
        "table1": {"table1_test_error": plots.test_error_curves, "table1_z2": plots.z2_curves},
        "table2": {"table2_curves": lambda _: plots.curves_by_model(by_model),
                   "table2_bars": lambda _: plots.comparison_bars(rows)},
    }[args.target]
    for name, draw in figures.items():
        fig = draw(results)
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(out / f"{name}.png")
    print(to_markdown(rows))
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
    device = pick_device(args.device)
    out = writable_folder(args.out, "--out")
    if not smoke:  # every dataset is found (or fetched) before anything is trained
        for dataset in EXPERIMENT_DATASETS.values():
            experiments.choose_dataset(dataset, args.data_dir, smoke=False)
    the_plan = plan(seeds=args.seeds, epochs=args.epochs, quick=args.quick, smoke=smoke,
                    device=device.type if args.device is None else str(device))
    runs = len({c for groups in the_plan.values() for cs in groups.values() for c in cs})
    print(f"psp-lite reproduce all: {runs} runs ({', '.join(the_plan)}) on {describe(device)}"
          f"{' (SMOKE: synthetic stand-in data, tiny subsets)' if smoke else ''}",
          file=sys.stderr)
    start = time.perf_counter()
    trained = train_plan(the_plan, data_dir=args.data_dir, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    if smoke:
        protocol = "smoke (synthetic stand-in images, tiny subsets)"
    elif args.quick:
        protocol = "quick (--quick: 1 seed, a few epochs on a subset)"
    elif args.seeds or args.epochs:
        protocol = f"shortened (--seeds {args.seeds}, --epochs {args.epochs})"
    else:
        protocol = "the authors' full length"
    notes = sorted({h.data_note for groups in trained.values() for hs in groups.values()
                    for h in hs if h.data_note})
    extra = {"device": describe(device), "wall_seconds": seconds, "smoke": smoke,
             "protocol": protocol, "data_notes": notes}
    if smoke:
        extra["stand_ins"] = {name: f"{SMOKE['dataset']} stands in for {real}"
                              for name, real in {**EXPERIMENT_DATASETS,
                                                 "sweep": "fashion-mnist"}.items()}
    written = [results.write_pack(trained, out, manifest_extra=extra)]
    pack = results.load_pack(out)
    written += write_figures(pack, out / "figures")
    print(pack_views.describe_pack(pack))
    for name in ("fig2", "table1"):
        print(to_markdown(summarize(finished(pack.results(name)))))
    return written


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """The `psp-lite sweep` subcommand's arguments."""
    p = sub.add_parser("sweep", help="train LeNet5 over a grid of lambdas (PSP and l2)",
                       description="Train LeNet5 over a grid of lambdas for PSP and l2 plus no "
                       "regularization, reusing the run cache (stop with Ctrl-C, run again to "
                       "resume); print final test error vs lambda and plot the U-curve.")
    p.add_argument("--dataset", default="fashion-mnist",
                   choices=("mnist", "fashion-mnist", "synthetic-mnist"))
    p.add_argument("--epochs", type=positive_int_arg, default=DEFAULT_EPOCHS,
                   help=f"epochs per run (default {DEFAULT_EPOCHS})")
    p.add_argument("--psp-lambdas", type=float, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="PSP lambdas (default: 9 values, 1e-5 to 1e-1)")
    p.add_argument("--l2-lambdas", type=float, nargs="*", default=list(DEFAULT_LAMBDAS),
                   metavar="LAM", help="l2 weight decays (default: as for PSP; none: no l2)")
    p.add_argument("--train-subset", type=int, default=DEFAULT_TRAIN_SUBSET,
                   help=f"training images used (default {DEFAULT_TRAIN_SUBSET}; 0: all)")
    p.add_argument("--test-subset", type=int, default=DEFAULT_TEST_SUBSET,
                   help=f"test images used (default {DEFAULT_TEST_SUBSET}; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, help="where the datasets are (or should go)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_ray_arguments(p)


def sweep_command(args: argparse.Namespace) -> list[Path]:
    """`psp-lite sweep`: train, print the table, write the table and the U-curve; the paths."""
    import matplotlib

    matplotlib.use("Agg")

    result = sweep(args.dataset, args.psp_lambdas, args.l2_lambdas, epochs=args.epochs,
                   seed=args.seed, train_subset=args.train_subset or None,
                   test_subset=args.test_subset or None, data_dir=args.data_dir,
                   device=args.device, progress=not args.no_progress,
                   runner=runner_from_cli(args))
    table = result.table()
    print(f"Final test error (%) after {result.epochs} epoch(s), {args.dataset}, seed {args.seed}:")
    print(table)
    for reg in WITH_LAMBDA:
        if result.lambdas(reg):
            lam, err = result.best(reg)
            print(f"lowest {short_name(reg)}: {err:.2f} % at λ={lam:g}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "sweep_table.md", out / "sweep_u_curve.png"
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
    if resources.get("num_gpus", 0) < 0 or resources.get("num_cpus", 1) <= 0:
        raise ValueError("--gpus-per-run must be >= 0 and --cpus-per-run > 0.")
    import_ray()
    return Runner("ray", args.ray or None, resources or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "reproduce":
            for path in reproduce(args):
                print(f"wrote {path}", file=sys.stderr)
        elif args.command == "sweep":
            for path in sweep_command(args):
                print(f"wrote {path}", file=sys.stderr)
        return 0
    except (DatasetNotFoundError, TrainingDiverged, CacheNotWritableError, ValueError) as error:
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
