"""How figures show the regularizers: legend labels and line colours (one home for both, so a
legend, a bar and a slider always agree). Their names: `psp_lite.regularizers`."""

from __future__ import annotations

#: Legend labels.
LABELS = {"none": "no regularization", "l2": "l2 (weight decay)", "psp": "PSP"}
#: Line colours (matplotlib colour names).
COLORS = {"none": "tab:gray", "l2": "tab:blue", "psp": "tab:red"}
