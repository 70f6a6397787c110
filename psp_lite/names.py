"""The regularizers by name, and how figures, tables and prose show them (one home for all).

"none" trains with the cross-entropy alone, "l2" adds weight decay (Eqs. 3-5) and "psp" the
post-synaptic potential penalty (Eq. 7). Every module that lists, labels or colours them imports
from here, so a legend, a table header and a sentence always agree.
"""

from __future__ import annotations

#: Every regularizer a run can use.
REGULARIZERS = ("none", "l2", "psp")
#: The ones with a lambda to sweep, in the order sweeps, figures and the explorer show them.
WITH_LAMBDA = ("psp", "l2")
#: Legend labels.
LABELS = {"none": "no regularization", "l2": "l2 (weight decay)", "psp": "PSP"}
#: Short names, for table headers, sliders and sentences.
SHORT_NAMES = {"none": "no regularization", "l2": "l2", "psp": "PSP"}
#: Line colours (matplotlib colour names).
COLORS = {"none": "tab:gray", "l2": "tab:blue", "psp": "tab:red"}


def short_name(regularizer: str) -> str:
    """'PSP', 'l2' or 'no regularization'; an unknown name as it is."""
    return SHORT_NAMES.get(regularizer, regularizer)


__all__ = ["COLORS", "LABELS", "REGULARIZERS", "SHORT_NAMES", "WITH_LAMBDA", "short_name"]
