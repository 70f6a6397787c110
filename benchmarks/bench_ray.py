"""A 6-run smoke sweep through the local runner and through Ray with 2 local workers, side by side.

    python benchmarks/bench_ray.py [--repeats 3] [--train-subset 2000] [--epochs 1]

Three ways, alternating so that load from other processes falls on all alike, every run trained
(use_cache=False), one torch thread per run everywhere:
- local: the runs one after another in this process (1 torch thread);
- ray, 1 at a time: one `run_configs([config], runner="ray")` call per run, so the runs go one
  after another through the same warm workers; its excess over local is what going through Ray
  costs per run (the call, dispatch, pickling the config and the history back);
- ray, 2 workers: 1 CPU per task, two runs at once (what `--ray` does here).
Ray's start-up and the first sweep (which starts the worker processes) are printed apart.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import torch

from psp_lite.experiments.lambda_sweep import sweep_configs
from psp_lite.runners.local import run_configs


def timed(configs, **kwargs) -> float:
    start = time.perf_counter()
    outcomes = run_configs(configs, use_cache=False, progress=False, **kwargs)
    assert all(not hasattr(o, "error") for o in outcomes), outcomes
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    import ray

    configs = sweep_configs("synthetic-mnist", (1e-4, 1e-3, 1e-2), (1e-4, 1e-3), epochs=args.epochs,
                            train_subset=args.train_subset, test_subset=500, device="cpu")
    assert len(configs) == 6
    torch.set_num_threads(1)  # as in each Ray task (1 CPU -> OMP_NUM_THREADS=1)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{len(configs)} runs: LeNet5, synthetic-mnist, {args.train_subset} train / 500 test "
          f"images, {args.epochs} epoch(s), 1 torch thread per run")
    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    print(f"ray.init (local, once): {time.perf_counter() - start:.1f} s")
    cold = timed(configs, runner="ray")
    print(f"first ray sweep (starts the worker processes): {cold:.1f} s")
    times: dict[str, list[float]] = {"local": [], "ray, 1 at a time": [], "ray, 2 workers": []}
    for i in range(args.repeats):
        times["local"].append(timed(configs))
        times["ray, 1 at a time"].append(sum(timed([c], runner="ray") for c in configs))
        times["ray, 2 workers"].append(timed(configs, runner="ray"))
        print(f"repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    ray.shutdown()
    median = {k: statistics.median(v) for k, v in times.items()}
    base = median["local"]
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("| runner | 6 runs, median wall s | per run s | / local |")
    print("| --- | --- | --- | --- |")
    for name, value in median.items():
        print(f"| {name} | {value:.2f} | {value / 6:.2f} | {value / base:.2f} |")
    extra = (median["ray, 1 at a time"] - base) / 6
    print(f"Ray's cost per run (1 at a time minus local, per run): {extra:+.2f} s")

if __name__ == "__main__":
    main()
