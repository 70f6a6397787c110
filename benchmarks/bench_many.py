"""K LeNet5 runs trained together (train_many) vs one after another (train), side by side.

Both train the same K configs (none / l2 / PSP over seeds) for the same epochs on the same
device-resident data, evaluation included, in this one process. Prints images per second per
run for each, their ratio, and what the measured rate means for the authors' Fig. 2 protocol
(3 regimes x 10 seeds x 50 epochs of 60,000 MNIST images, 10,000 test images per epoch).

    python benchmarks/bench_many.py                  # CPU: K=3, a 2,000-image subset
    python benchmarks/bench_many.py --device cuda --runs 30 --train 60000 --test 10000 --epochs 1
"""

from __future__ import annotations

import argparse
import time

import torch

from psp_lite.data import load_dataset
from psp_lite.device import describe, pick_device
from psp_lite.training.batched import train_many
from psp_lite.training.config import RunConfig
from psp_lite.training.loop import train

FIG2_RUNS, FIG2_EPOCHS, MNIST_TRAIN, MNIST_TEST = 30, 50, 60000, 10000


def configs(k: int, device: str, epochs: int, train_size: int, test_size: int) -> list[RunConfig]:
    regimes = [("none", 0.0), ("l2", 1e-4), ("psp", 1e-3)]
    return [RunConfig(dataset="synthetic-mnist", regularizer=regimes[i % 3][0],
                      lam=regimes[i % 3][1], seed=i // 3, epochs=epochs, device=device,
                      train_subset=train_size, test_subset=test_size) for i in range(k)]


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: the best available)")
    parser.add_argument("--runs", type=int, default=None, help="K (default: 30 on CUDA, else 3)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=None, help="training images per epoch")
    parser.add_argument("--test", type=int, default=None, help="test images per evaluation")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats of each")
    args = parser.parse_args()
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    k = args.runs or (FIG2_RUNS if cuda else 3)
    n_train = args.train or (MNIST_TRAIN if cuda else 2000)
    n_test = args.test or (MNIST_TEST if cuda else 1000)
    runs = configs(k, device.type, args.epochs, n_train, n_test)
    data = load_dataset("synthetic-mnist", device=device, train_subset=n_train,
                        test_subset=n_test)
    train_many(runs[:2], data, progress=False)  # warm-up: kernels, allocator, vmap tracing
    together, alone = [], []
    for _ in range(args.repeats):  # alternate, so that load changes hit both alike
        together.append(timed(lambda: train_many(runs, data, progress=False)))
        alone.append(timed(lambda: [train(c, data, progress=False) for c in runs]))
    t_many, t_seq = min(together), min(alone)
    images = args.epochs * n_train
    print(f"{describe(device)}, torch {torch.__version__}: {k} LeNet5 runs x {args.epochs} "
          f"epoch(s) x {n_train} training images ({n_test} test images per epoch)")
    print(f"  one after another: {t_seq:8.2f} s   {images / (t_seq / k):10.0f} images/s per run")
    print(f"  together         : {t_many:8.2f} s   {images / (t_many / k):10.0f} images/s per run")
    print(f"  together / one after another, speed: {t_seq / t_many:.2f}x")
    per_epoch_run = min(t_many, t_seq) / (k * args.epochs) * (MNIST_TRAIN / n_train)
    fig2 = per_epoch_run * FIG2_RUNS * FIG2_EPOCHS
    print(f"  the authors' Fig. 2 protocol (30 runs x 50 epochs, MNIST-sized) at the faster "
          f"rate: about {fig2 / 60:.1f} min")


if __name__ == "__main__":
    main()
