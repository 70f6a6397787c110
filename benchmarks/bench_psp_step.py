"""Cost of a PSP training step relative to a plain step (LeNet5, batch 100, CPU).

Prints ratios of median step times, all measured interleaved in this one process:
  psp    = capture + psp_penalty (reference normalization): the one path of the teaching
           notebooks and of training, a fused autograd node (one reduction per z forward,
           grad_output * c * z backward)
  naive  = capture + the same penalty written as plain tensor algebra through autograd
Target: psp / plain <= 1.10 (goal 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from psp_lite import capture, psp_penalty
from psp_lite.models import LeNet5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = LeNet5().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(100, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (100,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def plain() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def psp() -> None:
        out, z = capture(model, x)
        loss = F.cross_entropy(out, y) + psp_penalty(z, 1e-3, "reference")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def naive() -> None:
        out, z = capture(model, x)
        penalty = 1e-3 * sum(t.square().mean() for t in z.values()) / len(z)
        loss = F.cross_entropy(out, y) + penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    variants = {"plain": plain, "psp": psp, "naive": naive}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(args.steps + 10):
        for name, fn in variants.items():  # interleaved: load changes hit all alike
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if step >= 10:
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"device {device}, threads {torch.get_num_threads()}, {args.steps} steps each")
    for name in variants:
        ratio = med[name] / med["plain"]
        print(f"{name:>6}: {1e3 * med[name]:7.2f} ms/step   ratio to plain {ratio:.3f}")


if __name__ == "__main__":
    main()
