"""The training loop: one run, `train(config)` -> its `RunHistory`, and the pieces every epoch is
made of, shared with many runs at once (`psp_lite.training.batched`): the seeded initialization,
the evaluation on the test set, the epoch's record.

The defaults are the authors' LeNet5 protocol: SGD lr 0.1, no momentum, batch 100, test batch
1000. `paper_config` gives each experiment's full protocol; `psp_lite.runners` adds the cache.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from psp_lite.data import TensorData, batches, load_dataset
from psp_lite.device import describe
from psp_lite.models import get_model
from psp_lite.potentials import capture, layer_names, output_name, watch_potentials
from psp_lite.regularizers import psp_penalty
from psp_lite.training.config import RunConfig
from psp_lite.training.history import RunHistory, TrainingDiverged

#: Steps between two checks of the running loss for NaN/inf (one host sync each on a GPU).
DIVERGENCE_CHECK_STEPS = 25


def autocast(config: RunConfig):
    """The training forward pass's autocast context: bfloat16 when the config asks for it."""
    device = torch.device(config.device).type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")


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
        model = get_model(config.model)
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
    model = get_model(history.config.model)
    if any(True for _ in model.buffers()):
        raise ValueError(f"{history.config.model} has buffers (batch norm statistics) that runs "
                         "do not keep; rebuild works for LeNet5.")
    kept = sorted(history.weights)
    if not kept:
        raise ValueError(f"cannot rebuild {history.config.label}: its history kept no weights "
                         "(a diverged run, or one loaded without them).")
    if epoch is not None and epoch not in kept:
        raise ValueError(f"cannot rebuild {history.config.label} at epoch {epoch}: weights were "
                         f"kept at epochs {kept} only; pass one of those, or train with "
                         "snapshot_epochs to keep more.")
    snapshot = history.weights[kept[-1] if epoch is None else epoch]
    state = {k: torch.from_numpy(np.asarray(snapshot[k])).reshape(v.shape)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model.eval()


def _diverged(history: RunHistory, epoch: int, value: float) -> TrainingDiverged:
    """Mark `history` diverged at `epoch` (the one representation) and the error carrying it."""
    history.diverged_at = epoch
    return TrainingDiverged(history, value)


def train(config: RunConfig, data: TensorData | None = None, *, data_dir: str | Path | None = None,
          progress: bool = True) -> RunHistory:
    """Train one run from scratch (no cache) and return its history.

    PSP is a term of the loss (`capture` + `psp_penalty`, Eq. 7), l2 is SGD's weight decay
    (Eq. 5). The caller's random state is left as it was. A NaN/inf loss raises
    `TrainingDiverged` carrying the run's history: the epochs before, `diverged_at` set.
    """
    config = config.resolved()
    device = torch.device(config.device)
    if data is None:
        data = load_dataset(config.dataset, data_dir, device=device,
                            train_subset=config.train_subset, test_subset=config.test_subset)
    model = init_model(config, device)
    weight_decay = config.lam if config.regularizer == "l2" else 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones),
                                                     config.lr_gamma)
    order = torch.Generator().manual_seed(config.seed)
    psp = config.regularizer == "psp" and config.lam > 0
    history = RunHistory(config, device=describe(device), data_note=data.note)
    steps_per_epoch = math.ceil(len(data.train_y) / config.batch_size)

    bar = tqdm(range(1, config.epochs + 1), desc=config.label, unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        seen = 0
        steps = tqdm(batches(data.train_x, data.train_y, config.batch_size, shuffle=True,
                             generator=order, augment=config.augment),
                     total=steps_per_epoch, leave=False, unit="batch", disable=not progress)
        for step, (x, y) in enumerate(steps, 1):
            with autocast(config):
                if psp:
                    out, potentials = capture(model, x)
                    loss = F.cross_entropy(out, y) + psp_penalty(potentials, config.lam,
                                                                 config.normalization)
                else:
                    loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            seen += len(y)
            if step % DIVERGENCE_CHECK_STEPS == 0 and not torch.isfinite(total).item():
                raise _diverged(history, epoch, total.item())
        scheduler.step()
        train_loss = (total / seen).item()
        if not math.isfinite(train_loss):
            raise _diverged(history, epoch, train_loss)
        test_loss, test_error, z2 = evaluate(model, data, config.test_batch_size)
        record_epoch(history, epoch, time.perf_counter() - start, train_loss, test_loss,
                     test_error, z2, layer_names(model, list(z2)), model.named_parameters())
        bar.set_postfix(test_error=f"{test_error:.2f}%", z2=f"{history.z2[-1]:.3g}")
    return history
