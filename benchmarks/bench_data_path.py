"""psp_lite's data path vs the usual torchvision loop: one Fashion-MNIST training epoch (60k).

  psp_lite    = load_dataset(...) tensors on the device + data.batches(shuffle=True)
  torchvision = FashionMNIST with Compose([ToTensor(), Normalize((0.5,), (0.5,))]) and
                DataLoader(batch_size=100, shuffle=True, num_workers=0)

Two comparisons:
  data only   each batch is consumed by a cheap reduction (x.sum() + y.sum()), nothing else
  LeNet5 step each batch goes through one plain SGD step of LeNet5 (the end-to-end epoch; each
              path trains its own copy of the same initial network)
The two paths run in lockstep, batch by batch (which goes first alternates), and each path's epoch
time is the sum of its own batches' times (fetching the batch included): load from other
processes on a shared machine then falls on both alike, even when it changes within seconds.
Prints the median epoch time of each path over the repeats, the ratio torchvision / psp_lite of
the medians (target >= 1.3) and that ratio per epoch (each epoch's pair ran side by side).
The one-off setup (decoding the files, building the Dataset) is timed once and reported apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from psp_lite.data import clear_cache, default_data_dir, load_dataset
from psp_lite.data.batches import batches
from psp_lite.device import describe, pick_device
from psp_lite.models import LeNet5

BATCH = 100
Step = Callable[[Tensor, Tensor], Tensor]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_step(device: torch.device) -> Step:
    """A plain LeNet5 SGD step (the authors' lr 0.1, no momentum) returning the detached loss."""
    torch.manual_seed(0)
    model = LeNet5().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def reduce_step(x: Tensor, y: Tensor) -> Tensor:
    """The data-only 'step': a cheap reduction, so no batch is skipped or left lazy."""
    return x.sum() + y.sum()


def lockstep_epoch(sources: dict[str, Iterator[tuple[Tensor, Tensor]]], steps: dict[str, Step],
                   device: torch.device, limit: int | None = None) -> dict[str, float]:
    """One epoch of every source side by side, batch by batch; seconds spent on each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    spent = dict.fromkeys(sources, 0.0)
    order = list(sources)
    check = {name: torch.zeros((), device=device) for name in sources}
    batch = 0
    while limit is None or batch < limit:
        done = False
        for name in order if batch % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            item = next(sources[name], None)
            if item is None:
                done = True
                continue
            x, y = item[0].to(device, non_blocking=True), item[1].to(device, non_blocking=True)
            check[name] += steps[name](x, y)
            sync()
            spent[name] += time.perf_counter() - start
        if done:
            break
        batch += 1
    for value in check.values():
        value.item()  # everything consumed
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="data-only epochs per path")
    parser.add_argument("--train-repeats", type=int, default=3,
                        help="LeNet5 epochs per path (0 skips the end-to-end comparison)")
    parser.add_argument("--data-dir", type=Path,
                        help="torchvision root holding FashionMNIST/raw (default: $PSP_LITE_DATA, "
                             "else psp_lite's default data dir; filled from the Debian package)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    args = parser.parse_args()
    device = pick_device(args.device)
    root = args.data_dir or Path(os.environ.get("PSP_LITE_DATA") or default_data_dir())

    from torchvision import datasets, transforms

    clear_cache()
    start = time.perf_counter()
    data = load_dataset("fashion-mnist", root, device=device)
    setup_psp = time.perf_counter() - start
    start = time.perf_counter()
    tv_set = datasets.FashionMNIST(
        str(root), train=True, download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    setup_tv = time.perf_counter() - start
    if len(tv_set) != len(data.train_y):
        raise SystemExit(f"torchvision sees {len(tv_set)} items under {root}, psp_lite "
                         f"{len(data.train_y)} ({data.note}); pass --data-dir.")
    # Same numbers on both paths: the first image of the set, normalized alike.
    assert torch.allclose(tv_set[0][0].to(device), data.train_x[0], atol=1e-6)

    gen = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(tv_set, batch_size=BATCH, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0))

    def sources() -> dict[str, Iterator[tuple[Tensor, Tensor]]]:
        return {"psp_lite": batches(data.train_x, data.train_y, BATCH, shuffle=True,
                                    generator=gen),
                "torchvision": iter(loader)}

    print(f"Fashion-MNIST train set, {len(data.train_y)} images, batch {BATCH}, on "
          f"{describe(device)}; CPU: {cpu_name()}, {os.cpu_count()} cores; torch "
          f"{torch.__version__}")
    print(f"one-off setup: psp_lite load_dataset {setup_psp:.2f} s (decode + normalize, cached "
          f"per process), torchvision Dataset {setup_tv:.2f} s (not in the epoch times below)")

    comparisons = [("data only", args.repeats, False)]
    if args.train_repeats > 0:
        comparisons.append(("LeNet5 step", args.train_repeats, True))
    for label, repeats, train in comparisons:
        steps = ({name: make_step(device) for name in ("psp_lite", "torchvision")} if train
                 else dict.fromkeys(("psp_lite", "torchvision"), reduce_step))
        lockstep_epoch(sources(), steps, device, limit=20)  # warm-up: allocator, kernels, cache
        times: dict[str, list[float]] = {"psp_lite": [], "torchvision": []}
        for _ in range(repeats):
            for name, seconds in lockstep_epoch(sources(), steps, device).items():
                times[name].append(seconds)
        med = {name: statistics.median(t) for name, t in times.items()}
        spread = {name: f"{min(t):.2f}-{max(t):.2f}" for name, t in times.items()}
        paired = [tv / psp for tv, psp in zip(times["torchvision"], times["psp_lite"], strict=True)]
        print(f"{label:>12}: psp_lite {med['psp_lite']:7.2f} s/epoch ({spread['psp_lite']}), "
              f"torchvision {med['torchvision']:7.2f} s/epoch ({spread['torchvision']}), "
              f"{repeats} epochs each; torchvision / psp_lite = "
              f"{med['torchvision'] / med['psp_lite']:.2f}x (per epoch: "
              f"{', '.join(f'{r:.2f}x' for r in paired)})")


if __name__ == "__main__":
    main()
