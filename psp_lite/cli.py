"""`psp-lite reproduce fig2|fig3|table1|table2`: the paper's results measured beside its own;
`psp-lite sweep`: test error vs lambda for PSP and l2 (psp_lite.sweep)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import matplotlib

from psp_lite import checks, sweep
from psp_lite.cache import CacheNotWritableError
from psp_lite.checks import writable_folder
from psp_lite.data import INPUT_SHAPES, DatasetNotFoundError, canonical_dataset
from psp_lite.device import describe, pick_device
from psp_lite.models import INPUT_SHAPES as MODEL_INPUT_SHAPES
from psp_lite.runner import RayUnavailable, add_cli_arguments, runner_from_cli
from psp_lite.runs import QUICK, QUICK_LAMS
from psp_lite.train import TrainingDiverged

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
    shape = INPUT_SHAPES[dataset]
    for model in models:
        wanted = MODEL_INPUT_SHAPES[model]
        if wanted != shape:
            fits = [d for d, s in INPUT_SHAPES.items() if s == wanted]
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
                     "length, written as a results pack into --out (psp_lite.full_length)")
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
    add_cli_arguments(rep)
    rep.add_argument("--smoke", action="store_true",
                     help="all only: tiny runs on synthetic stand-in images (as PSP_LITE_SMOKE=1)")
    sweep.add_cli_parser(sub)
    return parser


def reproduce(args: argparse.Namespace) -> list[Path]:
    """Train what `args.target` needs and write its figures and table; return the paths."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psp_lite import experiments, plots

    if args.target == "all":
        from psp_lite import full_length

        return full_length.run_cli(args)
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
        rows += experiments.summarize(results)
        by_model[model] = results
        note = next(iter(results.values()))[0].data_note
        if note:
            print(f"data: {note}", file=sys.stderr)
    written = list(experiments.write_table(rows, out / args.target))
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
    print(experiments.to_markdown(rows))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "reproduce":
            for path in reproduce(args):
                print(f"wrote {path}", file=sys.stderr)
        elif args.command == "sweep":
            for path in sweep.run_cli(args):
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
