"""The paper's experiments: each regularizer over seeds (`compare`), the lambda sweep, the
full-length protocols behind a results pack, and smoke mode's tiny versions of all three.

* `compare`: `compare`, `choose_dataset` (stand-ins in smoke mode), `cifar_schedule`.
* `sweep`: `sweep`, `sweep_configs`, `train_one` (the explorer's "train this λ").
* `full_length`: the plan of `psp-lite reproduce all`.
* `smoke`: `PSP_LITE_SMOKE=1` (`is_smoke`, `pick`, `banner`).
"""

from psp_lite.experiments.comparison import DatasetChoice, choose_dataset, cifar_schedule, compare
from psp_lite.experiments.lambda_sweep import DEFAULT_LAMBDAS, sweep, sweep_configs, train_one
from psp_lite.experiments.smoke import banner, is_smoke, pick

__all__ = ["DEFAULT_LAMBDAS", "DatasetChoice", "banner", "choose_dataset", "cifar_schedule",
           "compare", "is_smoke", "pick", "sweep", "sweep_configs", "train_one"]
