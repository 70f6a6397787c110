"""Every `psp-lite` command's arguments: the parser, its argument types and the checks that
refuse bad input in one line before anything is loaded or trained."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import psp_lite.training.checks as checks
from psp_lite.data import CATALOG, canonical_dataset
from psp_lite.experiments.lambda_sweep import (
    DEFAULT_EPOCHS,
    DEFAULT_LAMBDAS,
    DEFAULT_TEST_SUBSET,
    DEFAULT_TRAIN_SUBSET,
)
from psp_lite.models import MODEL_INPUT_SHAPES
from psp_lite.runners.ray_cluster import CLUSTER_EXTRA, import_ray
from psp_lite.runners.spec import Runner
from psp_lite.training.checks import int_arg_up_to, positive_int_arg
from psp_lite.training.config import QUICK

#: What `psp-lite --help` says first.
DESCRIPTION = ("psp-lite reproduce fig2|fig3|table1|table2: the paper's results measured beside "
               "its own; psp-lite reproduce all: all of them at the authors' full length, as a "
               "results pack; psp-lite sweep: test error vs lambda for PSP and l2.")
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
    parser = OneLineParser(prog="psp-lite", description=DESCRIPTION)
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
