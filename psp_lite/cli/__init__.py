"""`psp-lite reproduce fig2|fig3|table1|table2`: the paper's results measured beside its own;
`psp-lite reproduce all`: all of them at the authors' full length, as a results pack;
`psp-lite sweep`: test error vs lambda for PSP and l2 (psp_lite.experiments.lambda_sweep).

Arguments and their checks: `psp_lite.cli.options`; what the commands do:
`psp_lite.cli.commands`; here, `main`, which maps every expected failure to one line and an exit
code (2: bad input, 1: an output not written after training, 130: interrupted).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from psp_lite.cli.commands import OutputNotWritten, reproduce, sweep_command
from psp_lite.cli.options import build_parser, check_data_dir
from psp_lite.data import DatasetNotFoundError
from psp_lite.runners.ray_cluster import RayUnavailable
from psp_lite.store.cache import CacheNotWritableError, cache_dir
from psp_lite.training.history import TrainingDiverged

__all__ = ["build_parser", "main"]


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

