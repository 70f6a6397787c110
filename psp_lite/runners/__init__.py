"""The runners: a list of `RunConfig`s -> their histories, through the run cache.

* `cached`: `run` / `run_many` in this process (batched on CUDA).
* `local` : `run_configs`, which keeps going past a failed run (`FailedRun`), here or on Ray.
* `ray_cluster`: the Ray path (the optional `cluster` extra); `spec`: `Runner`, where runs go.
"""

from psp_lite.runners.cached import run, run_many
from psp_lite.runners.local import resolve, run_configs
from psp_lite.runners.outcomes import FailedRun, Outcome, histories_or_raise
from psp_lite.runners.ray_cluster import RayUnavailable
from psp_lite.runners.spec import RUNNERS, Runner, as_runner

__all__ = ["RUNNERS", "FailedRun", "Outcome", "RayUnavailable", "Runner", "as_runner",
           "histories_or_raise", "resolve", "run", "run_configs", "run_many"]
