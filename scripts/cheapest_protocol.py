"""The cheapest protocol that resolves PSP's effect on test error.

Trains none / l2 / PSP (each at its own lambda) on a Fashion-MNIST subset for several seeds,
through the run cache (`run_many`: batched on a GPU, resumable), then reads shorter protocols off
the same runs: stop after epoch E, average the last E/5 epochs, and say whether PSP's paired
difference from each baseline exceeds two standard errors over seeds.

    python scripts/cheapest_protocol.py                     # 2,000 images, 60 epochs, 3 seeds
    python scripts/cheapest_protocol.py --train 5000 --epochs 40 --seeds 5 --psp 1e-2 --l2 1e-3
"""

from __future__ import annotations

import argparse
import time

from psp_lite.report.effect import gaps_markdown, truncations
from psp_lite.runners.cached import run_many
from psp_lite.training.config import RunConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--train", type=int, default=2000, help="training images (subset)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--psp", type=float, default=1e-2, help="PSP lambda (reference norm.)")
    parser.add_argument("--l2", type=float, default=1e-2, help="l2 weight decay")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    regimes = {"none": 0.0, "psp": args.psp, "l2": args.l2}
    configs = [RunConfig(dataset=args.dataset, regularizer=r, lam=lam, epochs=args.epochs,
                         seed=s, train_subset=args.train, device=args.device)
               for s in range(args.seeds) for r, lam in regimes.items()]
    start = time.perf_counter()
    histories = run_many(configs)
    curves = {r: [h.test_error for h in histories if h.config.regularizer == r]
              for r in regimes}
    lengths = sorted({e for e in (10, 20, 30, 40, 60, 80, 100, args.epochs) if e <= args.epochs})
    print(f"{args.dataset}, {args.train} training images, {args.seeds} seeds, PSP λ={args.psp:g},"
          f" l2 λ={args.l2:g}, {time.perf_counter() - start:.0f} s (cached runs: instant)")
    print(gaps_markdown(truncations(curves, lengths)))


if __name__ == "__main__":
    main()
