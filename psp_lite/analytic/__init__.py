"""Hand-derived PSP gradients (Eqs. 9-16), computed without autograd, and a check against autograd.

The derivation works on a chain of layers: affine maps (``nn.Linear``, ``nn.Conv2d``), each
followed by an elementwise activation (tanh, sigmoid, ReLU, leaky ReLU) and optionally by
``nn.MaxPool2d`` or a flattening; the last affine layer gives the logits, which count as a layer of
potentials. The pieces, each in its own module:

* `layer_walk`: the chain read off the model (`layer_stack`: an ``nn.Sequential`` as
  written, any other model traced through its forward pass), the supported modules, phi'.
* `by_hand`: `forward_record` (y_{l-1} and z_l per layer, Eq. 2), the backward
  steps (Eq. 16), `psp_contributions` (Eq. 14) and `psp_gradients` (Eq. 15).
* `gradient_check`: autograd's gradients, `compare_gradients` and the table of rows.
* `checks`: Eq. 12 split into its self and cross terms, the whole check `check_psp_gradients`,
  and `finite_difference`.
* `cross_layer`: Eq. 15 measured on a trained network, by source layer.
"""

from psp_lite.analytic.by_hand import (
    LayerRecord,
    affine_forward,
    analytic_psp_gradients,
    back_through,
    back_to_input,
    forward_record,
    input_patches,
    local_gradients,
    penalty_dz,
    psp_contributions,
    psp_gradients,
    psp_value,
)
from psp_lite.analytic.checks import (
    check_psp_gradients,
    eq12_terms,
    finite_difference,
    weight_decay_gradient,
)
from psp_lite.analytic.cross_layer import PullRow, cross_layer_pull, pull_markdown
from psp_lite.analytic.gradient_check import (
    TABLE_HEADER,
    GradientCheckRow,
    autograd_gradient,
    autograd_psp_gradients,
    compare_all,
    compare_gradients,
    default_rtol,
    format_table,
)
from psp_lite.analytic.layer_walk import (
    ACTIVATION_DERIVATIVES,
    AFFINE,
    activation_derivative,
    layer_stack,
    traced_stack,
)

__all__ = [
    "ACTIVATION_DERIVATIVES",
    "AFFINE",
    "GradientCheckRow",
    "LayerRecord",
    "PullRow",
    "TABLE_HEADER",
    "activation_derivative",
    "affine_forward",
    "analytic_psp_gradients",
    "autograd_gradient",
    "autograd_psp_gradients",
    "back_through",
    "back_to_input",
    "check_psp_gradients",
    "compare_all",
    "compare_gradients",
    "cross_layer_pull",
    "default_rtol",
    "eq12_terms",
    "finite_difference",
    "format_table",
    "forward_record",
    "input_patches",
    "layer_stack",
    "local_gradients",
    "penalty_dz",
    "psp_contributions",
    "psp_gradients",
    "psp_value",
    "pull_markdown",
    "traced_stack",
    "weight_decay_gradient",
]
