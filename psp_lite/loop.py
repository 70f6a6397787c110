"""The pieces every training epoch is made of, shared by one run (`train`) and many
(`train_many`): the seeded initialization, the evaluation on the test set, the epoch's record."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from psp_lite.batching import batches
from psp_lite.data import TensorData
from psp_lite.models import build_model
from psp_lite.potentials import output_name, watch_potentials
from psp_lite.runs import RunConfig, RunHistory

#: Steps between two checks of the running loss for NaN/inf (one host sync each on a GPU).
DIVERGENCE_CHECK_STEPS = 25


def autocast(config: RunConfig):
    """The training forward pass's autocast context: bfloat16 when the config asks for it."""
    device = torch.device(config.device).type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")


def layer_names(model: nn.Module, captured: list[str]) -> list[str]:
    """Readable names for the captured potentials: the producing layer where the model says."""
    names = getattr(model, "potential_layers", None)
    return list(names) if names and len(names) == len(captured) else captured


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData, batch_size: int) -> tuple[float, float, dict]:
    """Test loss, test error (%) and per-potential <z^2> over the whole test set.

    Sums stay on the device (float32 per batch); the batch totals are added in float64 on the
    host after one transfer, so a GPU syncs once per evaluation and MPS needs no float64.
    """
    model.eval()
    z_sums: list[dict[str, torch.Tensor]] = []  # per batch: name -> sum of z^2 (float32)
    outcome: list[torch.Tensor] = []  # per batch: (summed loss, number wrong)
    counts: dict[str, int] = {}

    def record(name: str, z: torch.Tensor) -> None:
        z_sums[-1][name] = z.detach().float().square().sum()
        counts[name] = counts.get(name, 0) + z.numel()

    with watch_potentials(model, record):
        for x, y in batches(data.test_x, data.test_y, batch_size):
            z_sums.append({})
            out = model(x)
            record(output_name(z_sums[-1]), out)
            outcome.append(torch.stack([F.cross_entropy(out.float(), y, reduction="sum"),
                                        (out.argmax(1) != y).sum().float()]))
    names = list(z_sums[0])
    per_batch = torch.stack([torch.stack([*o, *(b[k] for k in names)])
                             for o, b in zip(outcome, z_sums, strict=True)])
    loss_sum, wrong, *sums = per_batch.cpu().double().sum(0).tolist()  # the one sync
    n = len(data.test_y)
    z2 = OrderedDict((k, s / counts[k]) for k, s in zip(names, sums, strict=True))
    return loss_sum / n, 100.0 * wrong / n, z2


def init_model(config: RunConfig, device: torch.device) -> nn.Module:
    """The run's network, initialized from `config.seed` (the same for every regularizer),
    without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model)
    return model.to(device)


def snapshot_epochs(config: RunConfig) -> set[int]:
    """Epochs whose weights are kept: `config.snapshot_epochs` (negative = from the end), last."""
    return ({e if e > 0 else config.epochs + 1 + e for e in config.snapshot_epochs}
            | {config.epochs})


def record_epoch(history: RunHistory, epoch: int, seconds: float, train_loss: float,
                 test_loss: float, test_error: float, z2: dict, layers: list[str],
                 parameters: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Append one epoch's numbers to `history` (and the weights, at a snapshot epoch).

    `z2` is name -> <z^2> in capture order; `layers` gives their display names.
    """
    history.seconds.append(seconds)
    history.train_loss.append(train_loss)
    history.test_loss.append(test_loss)
    history.test_error.append(test_error)
    history.z2.append(float(np.mean(list(z2.values()))))
    for name, value in zip(layers, z2.values(), strict=True):
        history.z2_layers.setdefault(name, []).append(value)
    if epoch in snapshot_epochs(history.config):
        history.weights[epoch] = {
            name: p.detach().float().cpu().numpy().ravel().copy() for name, p in parameters
        }


def rebuild(history: RunHistory, epoch: int | None = None) -> nn.Module:
    """The trained network of `history` from its kept weights (default: the last epoch), in
    eval mode on the CPU. Only for models without buffers (LeNet5): BN statistics are not kept."""
    model = build_model(history.config.model)
    if any(True for _ in model.buffers()):
        raise ValueError(f"{history.config.model} has buffers (batch norm statistics) that runs "
                         "do not keep; rebuild works for LeNet5.")
    snapshot = history.weights[epoch or max(history.weights)]
    state = {k: torch.from_numpy(np.asarray(snapshot[k])).reshape(v.shape)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model.eval()
