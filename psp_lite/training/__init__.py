"""The training layer: what a run is (`RunConfig`, the authors' protocols), what it leaves
(`RunHistory`), and how it trains: one run (`train`) or many in the same kernels (`train_many`).

* `config`: `RunConfig`, `paper_config`, `protocol`, `QUICK`.
* `history`: `RunHistory`, `TrainingDiverged`, `SweepResult`, the late-epoch rule.
* `checks`: argument checks shared with the command line.
* `loop`: the pieces of an epoch (init, evaluation, recording, `rebuild`).
* `train`: `train(config)`; `batched`: `train_many(configs)`.
"""

from psp_lite.training.batched import train_many
from psp_lite.training.config import QUICK, QUICK_LAMS, Protocol, RunConfig, paper_config, protocol
from psp_lite.training.history import (
    Groups,
    RunHistory,
    SweepResult,
    TrainingDiverged,
    late_epochs,
)
from psp_lite.training.loop import evaluate, rebuild, train

__all__ = ["QUICK", "QUICK_LAMS", "Groups", "Protocol", "RunConfig", "RunHistory", "SweepResult",
           "TrainingDiverged", "evaluate", "late_epochs", "paper_config", "protocol", "rebuild",
           "train", "train_many"]
