"""psp_lite: post-synaptic potential (PSP) regularization, Tartaglione et al., ICANN 2019.

The PSP core sits at the top (`potentials`, `regularizers`, `models`, `device`, `paper`); the
subpackages below it each do one job, in the order the data flows: `data`, `analytic` (the
hand-derived gradients), `training`, `store`, `runners`, `report`, `experiments`, `explorer`,
`teaching`, and the `cli`. Everything a notebook needs is importable from here.
"""

from psp_lite import (
    analytic,
    data,
    device,
    experiments,
    explorer,
    models,
    paper,
    potentials,
    regularizers,
    report,
    runners,
    store,
    teaching,
    training,
)
from psp_lite.data import load_dataset
from psp_lite.device import pick_device
from psp_lite.models import get_model, list_models
from psp_lite.potentials import ACTIVATIONS, capture, mean_square
from psp_lite.regularizers import SquaredPotentials, l2_penalty, psp_penalty
from psp_lite.runners import run, run_many
from psp_lite.training import RunConfig, RunHistory, train, train_many

__all__ = ["ACTIVATIONS", "RunConfig", "RunHistory", "SquaredPotentials", "analytic", "capture",
           "data", "device", "experiments", "explorer", "get_model", "l2_penalty",
           "list_models", "load_dataset", "mean_square", "models", "paper", "pick_device",
           "potentials", "psp_penalty", "regularizers", "report", "run", "run_many", "runners",
           "store", "teaching", "train", "train_many", "training"]
__version__ = "0.1.0"
