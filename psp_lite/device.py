"""Pick the device to train on: CUDA if available, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """`requested` if given (e.g. "cpu", "cuda:0"), else the best available device."""
    if requested not in (None, "auto"):
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was asked for but CUDA is not available; "
                             "use device='cpu' or leave it unset to pick automatically.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(requested: str | torch.device | None) -> str:
    """The device type a config records: "auto" (resolved where the run is keyed) when none is
    asked for, else the type asked for ("cuda:1" -> "cuda"), checked where the run trains."""
    return "auto" if requested in (None, "auto") else torch.device(requested).type


def describe(device: torch.device) -> str:
    """A short human-readable name of the device, e.g. 'cuda (NVIDIA H100 80GB HBM3)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
