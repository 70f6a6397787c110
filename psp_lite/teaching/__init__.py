"""Helpers behind notebooks 01-03, by concept. Everything is importable from `psp_lite.teaching`.

* `toy`: toy networks and data, plain SGD with no regularizer, l2 or PSP.
* `first_look`: one network trained three times (none, l2, PSP): weights and z per layer.
* `decay`: what the pure weight-decay update (Eq. 5) does to <z^2> per layer.
* `slopes`: activation slopes phi'(z), and trained z distributions under weight decay.
* `metric`: PSP for one layer as weight decay in the metric of its input (trace identity), and
  the cases where it is exactly weight decay (notebook 03).
* `derivation`: notebook 02's checks of Eqs. 9-16, one call and one line each.
* `normalizations`: the two readings of Eq. 7 on a batch, layer by layer (notebook 04).
* `decomposition`: one-line gradient checks and Eq. 14's split by source layer.
* `answers`: reading what a student typed into a prediction cell.
* `eq15`: Eq. 15 for a tanh MLP: the check's nets, autograd's answer, the recursion by hand with
  one planted mistake.
* `student_code`: running a student's Eq. 15 function, its errors and returns as text.
* `predictions`: prediction cells (`check_prediction`, `written`).
* `exercises`: `check_tensor`, and the Eq. 15 check with its diagnosis.
"""

from psp_lite.report.style import MIN_POINTS, legend_below, readable
from psp_lite.teaching.decay import (
    DECAY_NETWORKS,
    FASTEST_LAYER_HINTS,
    LAYER_2_EXPONENT_HINTS,
    bias_free_relu_prediction,
    decay_exponent,
    decay_network,
    decay_two_networks,
    mean_z2_during_weight_decay,
    plot_mean_z2_during_decay,
)
from psp_lite.teaching.decomposition import (
    check_line,
    gradient_parts_by_source_layer,
    plot_check_rows,
    plot_contribution_matrix,
    plot_contributions,
)
from psp_lite.teaching.derivation import (
    MODEL_SENTENCE,
    PaperSymbols,
    eq14_lines,
    eq15_16_lines,
    nonzero_rows,
    own_term_lines,
    paper_symbols,
    row_hints,
)
from psp_lite.teaching.eq15 import (
    MISTAKES,
    Eq15Case,
    eq15_by_autograd,
    eq15_by_hand,
    eq15_case,
    eq15_cases,
    tanh_mlp_forward,
)
from psp_lite.teaching.exercises import Eq15Check, check_eq15_mlp, check_tensor
from psp_lite.teaching.first_look import (
    PAPER_L2_LAMBDA,
    PAPER_PSP_LAMBDA,
    SMALLEST_WEIGHTS_HINTS,
    WEAK_PSP_HINTS,
    FirstLookSettings,
    TrainedLayers,
    describe_ratios,
    lambda_in_paper_units,
    plot_none_l2_psp,
    ratios_to_unregularized,
    smallest_weights,
    train_none_l2_psp,
    weights_line,
)
from psp_lite.teaching.metric import (
    WEIGHT_DECAY_CASES,
    WeightDecayCases,
    centre_and_whiten,
    input_moments,
    layer_l2_penalty,
    layer_psp_penalty_by_trace,
    layer_psp_penalty_direct,
    local_psp_gradient_vs_weight_decay,
    penalty_on_input_kinds,
    weight_decay_cases,
    whiten,
    zero_gradient_columns,
)
from psp_lite.teaching.normalizations import (
    LayerBalance,
    penalty_and_gradients_vs_cross_entropy,
    penalty_share_per_layer,
    plot_penalty_shares,
    shares,
    shares_table,
)
from psp_lite.teaching.predictions import NOT_YET_SHOWN, check_prediction, written
from psp_lite.teaching.slopes import (
    ZDistribution,
    activation_and_slope,
    first_layer_z_after_training,
    lambda_explorer,
    largest_slopes,
    plot_z_over_activations,
    slope_table,
)
from psp_lite.teaching.toy import (
    ACTIVATION_NAMES,
    REGULARIZERS,
    linear_layers,
    make_activation,
    mlp,
    single_thread,
    toy_classification,
    train_sgd,
)

__all__ = [
    "DECAY_NETWORKS", "FASTEST_LAYER_HINTS", "LAYER_2_EXPONENT_HINTS", "MIN_POINTS",
    "MODEL_SENTENCE",
    "NOT_YET_SHOWN", "PAPER_L2_LAMBDA", "PAPER_PSP_LAMBDA",
    "SMALLEST_WEIGHTS_HINTS", "WEAK_PSP_HINTS", "WEIGHT_DECAY_CASES",
    "PaperSymbols",
    "WeightDecayCases", "decay_network", "decay_two_networks", "eq14_lines", "eq15_16_lines",
    "lambda_in_paper_units", "largest_slopes", "legend_below", "nonzero_rows", "own_term_lines",
    "paper_symbols", "penalty_on_input_kinds", "readable", "weight_decay_cases",
    "zero_gradient_columns",
    "ACTIVATION_NAMES", "MISTAKES", "REGULARIZERS", "Eq15Case", "Eq15Check",
    "FirstLookSettings", "LayerBalance", "TrainedLayers", "ZDistribution", "activation_and_slope",
    "bias_free_relu_prediction", "centre_and_whiten", "check_eq15_mlp",
    "check_line", "check_prediction", "check_tensor", "decay_exponent", "describe_ratios",
    "eq15_by_autograd",
    "eq15_by_hand", "eq15_case", "eq15_cases", "first_layer_z_after_training",
    "gradient_parts_by_source_layer",
    "input_moments", "lambda_explorer", "layer_l2_penalty", "layer_psp_penalty_by_trace",
    "layer_psp_penalty_direct", "linear_layers", "local_psp_gradient_vs_weight_decay",
    "make_activation", "mean_z2_during_weight_decay", "mlp",
    "penalty_and_gradients_vs_cross_entropy",
    "penalty_share_per_layer", "plot_check_rows", "plot_contribution_matrix",
    "plot_contributions", "plot_mean_z2_during_decay", "plot_none_l2_psp", "plot_penalty_shares",
    "plot_z_over_activations", "ratios_to_unregularized", "row_hints", "shares", "shares_table",
    "single_thread", "slope_table", "smallest_weights", "tanh_mlp_forward", "toy_classification",
    "train_none_l2_psp",
    "train_sgd",
    "weights_line", "whiten", "written",
]
