"""Where runs train: here (`local`) or as Ray tasks (`ray`), with the cluster's address and each
task's resources. Shared by both runners (so neither imports the other for it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RUNNERS = ("local", "ray")


@dataclass(frozen=True)
class Runner:
    """Where runs train: `kind` "local" or "ray"; for Ray, the cluster `address` (None: start
    Ray on this machine; "auto" or "ray://host:10001": join) and per-task `resources` (Ray task
    options such as {"num_gpus": 0.25, "num_cpus": 2, "max_retries": 3})."""

    kind: str = "local"
    address: str | None = None
    resources: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown runner {self.kind!r}; use one of {RUNNERS}.")


def as_runner(runner: str | Runner, address: str | None = None,
              resources: Mapping[str, Any] | None = None) -> Runner:
    """`runner` as a `Runner` ("local" / "ray" with `address` and `resources`)."""
    if isinstance(runner, Runner):
        if address is not None or resources is not None:
            raise ValueError("give address and resources in the Runner, not beside it.")
        return runner
    return Runner(runner, address, resources)


