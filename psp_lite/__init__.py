"""psp_lite: post-synaptic potential (PSP) regularization, Tartaglione et al., ICANN 2019."""

from psp_lite.potentials import ACTIVATIONS, capture, mean_square
from psp_lite.regularizers import SquaredPotentials, l2_penalty, psp_penalty

__all__ = ["ACTIVATIONS", "SquaredPotentials", "capture", "l2_penalty", "mean_square",
           "psp_penalty"]
__version__ = "0.1.0"
