"""Pick the device to train on: CUDA if available, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

#: Device types a run may ask for ("auto": the best available one).
DEVICE_TYPES = ("cpu", "cuda", "mps")
_CHOICES = "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def parse_device(requested: str | torch.device) -> torch.device:
    """`requested` as a torch.device of a supported type, without checking it is present."""
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(requested)!r}; use {_CHOICES}.") from None
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"unsupported device {str(requested)!r}; use {_CHOICES}.")
    if device.type in ("cpu", "mps") and device.index not in (None, 0):
        raise ValueError(f"device {str(requested)!r}: there is one {device.type} device and it "
                         f"takes no index; use '{device.type}'.")
    return torch.device(device.type) if device.type != "cuda" else device


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """`requested` if given (e.g. "cpu", "cuda:0"), else the best available device.

    A device that this machine does not have is refused at once with a ValueError.
    """
    if requested in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = parse_device(requested)
    fallback = "use device='cpu' (--device cpu) or leave it unset to pick the best available"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(requested)!r} was asked for but CUDA is not available "
                             f"on this machine; {fallback}.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(requested)!r} was asked for but this machine has "
                             f"{count} CUDA device(s) (cuda:0 to cuda:{count - 1}); {fallback}.")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {str(requested)!r} was asked for but Apple's MPS is not "
                         f"available on this machine; {fallback}.")
    return device


def device_name(requested: str | torch.device | None) -> str:
    """The device a config records: "auto" (resolved where the run is keyed) when none is asked
    for, else the device asked for, index kept ("cuda:1"; "cpu:0" -> "cpu"); that it is present
    is checked where the run trains."""
    return "auto" if requested in (None, "auto") else str(parse_device(requested))


def describe(device: torch.device) -> str:
    """A short human-readable name of the device, e.g. 'cuda (NVIDIA H100 80GB HBM3)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
