"""Batches by index on the data's device (no DataLoader, no workers) and CIFAR augmentation."""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def _randint(high: int, n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def crop_flip(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """CIFAR augmentation for a batch: random crop of the zero-padded image, random h-flip.

    Per image an offset in [0, 2 * padding] per axis and a coin flip; one gather, on x's device.
    """
    if x.dim() != 4:
        raise ValueError(f"crop_flip wants an N x C x H x W batch, got shape {tuple(x.shape)}.")
    n, _, h, w = x.shape
    dev = x.device
    dy = _randint(2 * padding + 1, n, dev, generator)
    dx = _randint(2 * padding + 1, n, dev, generator)
    flip = _randint(2, n, dev, generator).bool()
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]
    ar = torch.arange(w, device=dev)[None, :]
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar, ar)
    out = padded[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x, y) batches by index slicing on the data's device; the last one may be short."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x has {n} items but y has {y.shape[0]}.")
    idx = None
    if shuffle:
        gen_device = generator.device if generator is not None else x.device
        idx = torch.randperm(n, generator=generator, device=gen_device).to(x.device)
    for start in range(0, n, int(batch_size)):
        if idx is None:
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        else:
            sel = idx[start:start + batch_size]
            xb, yb = x[sel], y[sel]
        if augment:
            xb = crop_flip(xb, generator)
        yield xb, yb
