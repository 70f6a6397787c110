"""The paper's experiments as functions: train each regularizer over seeds, summarize beside the
paper's numbers. Shared by the notebooks 04-07 and `psp-lite reproduce`."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from psp_lite.data import TITLES, DatasetNotFoundError, canonical_dataset, load_dataset
from psp_lite.device import device_name
from psp_lite.models import build_model
from psp_lite.paper import authors_notebook_error, paper_error
from psp_lite.potentials import capture
from psp_lite.regularizers import psp_penalty
from psp_lite.runner import Runner, histories_or_raise, run_configs
from psp_lite.smoke import is_smoke
from psp_lite.train import RunHistory, layer_names, paper_config

Results = dict[str, list[RunHistory]]  # regularizer -> one history per seed


def compare(
    dataset: str,
    regularizers: tuple[str, ...] = ("none", "l2", "psp"),
    *,
    seeds: tuple[int, ...] = (0,),
    model: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    lams: Mapping[str, float] | None = None,
    runner: str | Runner = "local",
    **overrides,
) -> Results:
    """Train (or load from the cache) every regularizer x seed under the published protocol
    (the paper's; for LeNet5 the epoch and seed counts of the authors' code).

    `overrides` replace protocol fields (epochs, train_subset, ...) for every regularizer;
    `lams` replaces the lambda of some (e.g. ``{"psp": 3e-4}``). `runner` is "local", "ray" or a
    `psp_lite.runner.Runner`. A run that fails (e.g. diverges) raises its error once the others
    have ended (they stay cached).
    """
    device = device_name(overrides.pop("device", None))
    lams = dict(lams or {})
    unknown = set(lams) - set(regularizers)
    if unknown:
        raise ValueError(f"lams names regularizers not compared: {sorted(unknown)}.")
    configs = [paper_config(dataset, r, model, device=device, seed=s,
                            **({"lam": lams[r]} if r in lams else {}), **overrides)
               for r in regularizers for s in seeds]
    runs = histories_or_raise(run_configs(configs, runner=runner, data_dir=data_dir,
                                          progress=progress, desc=f"{dataset} runs"))
    return {r: runs[k * len(seeds):(k + 1) * len(seeds)] for k, r in enumerate(regularizers)}


#: Smoke-mode stand-ins, tried in order when a dataset is not on disk (never downloaded).
STAND_INS: dict[str, tuple[str, ...]] = {
    "mnist": ("fashion-mnist", "synthetic-mnist"),
    "fashion-mnist": ("synthetic-mnist",),
    "cifar10": ("synthetic-cifar10",),
}


STAND_IN_NAMES = {"synthetic-mnist": "synthetic 28x28 grey-scale images",
                  "synthetic-cifar10": "synthetic 32x32 colour images"}


@dataclass(frozen=True)
class DatasetChoice:
    """The dataset a notebook asked for, the one it will train on, and a note saying which."""

    requested: str
    dataset: str
    note: str

    @property
    def stand_in(self) -> bool:
        return self.dataset != self.requested

    def __str__(self) -> str:
        return self.note


def _found(name: str, data_dir: str | Path | None, download: bool) -> str:
    """Where `name` was found (raises DatasetNotFoundError when it is nowhere)."""
    note = load_dataset(name, data_dir, train_subset=1, test_subset=1, download=download).note
    return note.split("; subset")[0]


def choose_dataset(dataset: str, data_dir: str | Path | None = None, *,
                   smoke: bool | None = None) -> DatasetChoice:
    """The dataset to train on, checked before any training starts.

    Without smoke mode this is `dataset` itself, and a dataset that cannot be had (on disk or by
    download) raises the clear `DatasetNotFoundError`. In smoke mode nothing is downloaded: a
    dataset not on disk is replaced by its stand-in (MNIST -> Fashion-MNIST -> synthetic images,
    CIFAR-10 -> synthetic images), and the note names it.
    """
    smoke = is_smoke() if smoke is None else smoke
    dataset = canonical_dataset(dataset)  # a ValueError naming the choices for unknown names
    title = TITLES[dataset]
    if not smoke:
        return DatasetChoice(dataset, dataset, f"data: {_found(dataset, data_dir, True)}")
    missing = []
    for name in (dataset, *STAND_INS.get(dataset, ())):
        try:
            where = _found(name, data_dir, False)
        except DatasetNotFoundError:
            missing.append(TITLES[name])
            continue
        if name == dataset:
            return DatasetChoice(dataset, name, f"data (smoke run): {where}")
        used = STAND_IN_NAMES.get(name, TITLES[name])
        return DatasetChoice(dataset, name, (
            f"STAND-IN (smoke run): {' and '.join(missing)} not available offline, so this "
            f"smoke run trains on {used} instead of {title}. Every number below is measured on "
            f"{used}, not on {title}; the paper's column shows the paper's numbers for the "
            f"dataset actually used, where it has any. [{re.sub(r' [(][^()]*[)]$', '', where)}]"))
    raise DatasetNotFoundError(f"no dataset or stand-in found for {title}: {missing}")


def cifar_schedule(epochs: int) -> dict:
    """The paper's CIFAR-10 learning-rate schedule (lr x 0.1 after epochs 150, 250, 350 of 450)
    compressed proportionally to `epochs`; `epochs=450` gives the paper's own (Sec. 4.3)."""
    paper = paper_config("cifar10", "l2")
    scaled = sorted({max(1, round(m * epochs / paper.epochs)) for m in paper.lr_milestones})
    return dict(epochs=epochs, lr_milestones=tuple(m for m in scaled if m < epochs))


def timing(results: Results) -> str:
    """How long the runs took and on what device (as recorded when each run was trained)."""
    histories = [h for hs in results.values() for h in hs]
    if not histories:
        return "no runs."
    devices = sorted({h.device for h in histories})
    parts = []
    for reg, hs in results.items():
        per_epoch = [s for h in hs for s in h.seconds]
        parts.append(f"{reg} {np.mean(per_epoch):.1f} s/epoch")
    total = sum(sum(h.seconds) for h in histories)
    model = histories[0].config.model
    return (f"{len(histories)} run(s) of {model}, {len(histories[0].seconds)} epoch(s) each, "
            f"trained on {' / '.join(devices)}: {', '.join(parts)}; {total / 60:.1f} min of "
            "training in all (a cached run reports the time it took when it was trained).")


def late_epochs(epochs: int) -> int:
    """How many final epochs a summary averages: epochs 31..end as the authors do when there
    are more than 40, else the last 40 % (at least 1)."""
    return epochs - 30 if epochs > 40 else max(1, round(0.4 * epochs))


@dataclass
class SummaryRow:
    dataset: str
    model: str
    regularizer: str
    lam: float
    seeds: int
    epochs: int
    averaged_epochs: str  # e.g. "31-50"
    ours_mean: float  # test error %, mean over the averaged epochs and seeds
    ours_std: float  # std over seeds of the per-seed mean
    paper: float | None
    authors_notebook: float | None
    train_size: int | None = None  # the train subset, None for the whole training set


def summarize(results: Results, last: int | None = None) -> list[SummaryRow]:
    """One row per regularizer: our late-epoch test error beside the paper's.

    Averaged over the `last` epochs; by default those after the last learning-rate drop when
    the schedule has one (CIFAR-10), else `late_epochs`.
    """
    rows = []
    for regularizer, histories in results.items():
        c = histories[0].config
        n = len(histories[0].test_error)
        drops = [m for m in c.lr_milestones if m < n]
        k = last or (n - max(drops) if drops else late_epochs(n))
        per_seed = [h.final_error(k) for h in histories]
        rows.append(SummaryRow(
            c.dataset, c.model, regularizer, c.lam, len(histories), n, f"{n - k + 1}-{n}",
            float(np.mean(per_seed)), float(np.std(per_seed)),
            paper_error(c.dataset, c.model, regularizer),
            authors_notebook_error(c.dataset, c.model, regularizer),
            c.train_subset,
        ))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: list[SummaryRow]) -> str:
    """A Markdown table, ours and the paper's side by side (labelled)."""
    lines = [
        "| dataset | model | regularizer | λ | seeds | epochs averaged | ours: test error % "
        "| paper: test error % | authors' notebook % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f" ± {r.ours_std:.2f}" if r.seeds > 1 else ""
        lines.append(
            f"| {r.dataset} | {r.model} | {r.regularizer} | {r.lam:g} | {r.seeds} "
            f"| {r.averaged_epochs} of {r.epochs} | {r.ours_mean:.2f}{spread} | {_fmt(r.paper)} "
            f"| {_fmt(r.authors_notebook)} |"
        )
    return "\n".join(lines) + "\n"


def write_table(rows: list[SummaryRow], path_stem: Path) -> tuple[Path, Path]:
    """Write `<stem>.md` and `<stem>.csv`; return both paths."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = path_stem.with_suffix(".md"), path_stem.with_suffix(".csv")
    md.write_text(to_markdown(rows))
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in dataclasses.fields(SummaryRow)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    return md, csv_path


# ----------------------------------------------------------------------------- honest reading

NAMES = {"none": "no regularization", "l2": "l2", "psp": "PSP"}


def _gap(psp: SummaryRow, base: SummaryRow) -> str:
    """One sentence on PSP vs `base` in this run, with what the seeds allow us to say."""
    diff = base.ours_mean - psp.ours_mean
    name = NAMES.get(base.regularizer, base.regularizer)
    if abs(diff) < 0.005:
        said = f"PSP and {name} gave the same test error ({psp.ours_mean:.2f} %)"
    else:
        said = (f"PSP's test error ({psp.ours_mean:.2f} %) was {'lower' if diff > 0 else 'higher'}"
                f" than {name}'s ({base.ours_mean:.2f} %) by {abs(diff):.2f} points")
    n = min(psp.seeds, base.seeds)
    if n < 2:
        return (f"{said}; with one seed the seed-to-seed spread is unknown, so this gap alone "
                "does not show that either is better.")
    # ours_std is the spread over seeds (ddof=0); the standard error of the difference of means:
    sample = [r.ours_std * math.sqrt(r.seeds / (r.seeds - 1)) for r in (psp, base)]
    se = math.sqrt(sample[0] ** 2 / psp.seeds + sample[1] ** 2 / base.seeds)
    if abs(diff) > 2 * se:
        return (f"{said}, more than twice the standard error of the difference over {n} seeds "
                f"({se:.2f} points): a gap this run resolves.")
    return (f"{said}, within twice the standard error of the difference over {n} seeds "
            f"({se:.2f} points): not distinguishable from seed-to-seed variation.")


def z2_reading(results: Results, *, smoke: bool | None = None) -> str:
    """What Fig. 2b shows in this run: the final layer-mean <z^2> per regularizer and how it
    moved since the first epoch (geometric mean over seeds), beside the paper's description."""
    smoke = is_smoke() if smoke is None else smoke
    first, last = {}, {}
    for reg, hs in results.items():
        curves = np.log(np.array([h.z2 for h in hs], dtype=float))
        first[reg], last[reg] = float(np.exp(curves[:, 0].mean())), float(np.exp(curves[:, -1]
                                                                                  .mean()))
    epochs = len(next(iter(results.values()))[0].z2)
    moved = "; ".join(
        f"{NAMES.get(r, r)} {last[r]:.3g} ({'up' if last[r] > first[r] else 'down'} from "
        f"{first[r]:.3g} after epoch 1)" for r in results)
    text = [f"Layer-mean <z^2> on the test set after epoch {epochs}: {moved}."]
    if "psp" in last and len(last) > 1 and not smoke:
        lowest = min(last, key=last.get)
        others = [last[r] for r in last if r != "psp"]
        if max(last.values()) < 1.1 * min(last.values()):
            text.append("All are within 10 % of each other: the regularizers have not "
                        "separated <z^2> yet.")
        elif lowest == "psp":
            text.append(f"PSP's is the lowest, {min(others) / last['psp']:.1f} times below the "
                        "next one, as in the paper's Fig. 2b.")
        else:
            text.append(f"PSP's is not the lowest here ({NAMES.get(lowest, lowest)}'s is), "
                        "unlike the paper's Fig. 2b.")
    text.append("The paper describes <z^2> as growing without regularization, growing to a "
                "plateau with l2, and staying low and slowly falling with PSP.")
    if smoke:
        text.insert(0, "SMOKE RUN: after 1-2 epochs on a tiny subset these curves have not "
                       "settled; nothing below is evidence either way.")
    return " ".join(text)


def reading(rows: list[SummaryRow], *, smoke: bool | None = None) -> str:
    """A short reading of `rows` that claims only what the numbers show (one paragraph per
    dataset and model): PSP against each baseline in this run, then against the paper."""
    smoke = is_smoke() if smoke is None else smoke
    paragraphs = []
    if smoke:
        paragraphs.append(
            "SMOKE RUN: tiny subsets and 1-2 epochs. The numbers show that the pipeline runs; "
            "they cannot tell which regularizer generalizes better, so no reading is drawn "
            "from them.")
    groups: dict[tuple[str, str], dict[str, SummaryRow]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.model), {})[r.regularizer] = r
    for (dataset, model), regs in groups.items():
        first = next(iter(regs.values()))
        size = (f"a {first.train_size}-image training subset" if first.train_size
                else "the full training set")
        lines = [f"{model} on {TITLES.get(dataset, dataset)}, {size}, mean test error over "
                 f"epochs {first.averaged_epochs} of {first.epochs}, {first.seeds} seed(s)."]
        psp = regs.get("psp")
        if dataset.startswith("synthetic"):
            lines.append("Synthetic stand-in data: these numbers measure nothing the paper "
                         "reports.")
        if psp is None:
            lines.append("No PSP run to compare.")
        elif not smoke:
            lines += [_gap(psp, base) for key in ("l2", "none") if (base := regs.get(key))]
            l2 = regs.get("l2")
            if psp.paper is not None and l2 is not None and l2.paper is not None:
                paper_gap = l2.paper - psp.paper
                ours_gap = l2.ours_mean - psp.ours_mean
                same = (ours_gap > 0) == (paper_gap > 0) and abs(ours_gap) >= 0.005
                lines.append(
                    f"The paper reports l2 {l2.paper:.2f} % and PSP {psp.paper:.2f} % "
                    f"(PSP lower by {paper_gap:.2f} points); our gap "
                    f"{'has the same sign' if same else 'does not have the same sign'}.")
            protocol = paper_config(dataset, "psp", model)
            shorter = []
            if first.epochs < protocol.epochs:  # LeNet5 counts: the authors' code, not the paper
                whose = "the authors'" if dataset in ("mnist", "fashion-mnist") else "the paper's"
                shorter.append(f"{first.epochs} epochs instead of {whose} {protocol.epochs}")
            if first.train_size:
                shorter.append("a subset of the training data")
            if dataset in ("mnist", "fashion-mnist") and first.seeds < 10:
                shorter.append(f"{first.seeds} seed(s) instead of the authors' 10")
            if shorter:
                lines.append(
                    "This run is shorter than the published protocol (" + "; ".join(shorter)
                    + "), so "
                    "its absolute errors are not the paper's and a gap of a few tenths of a "
                    "point can change sign with more training or other seeds.")
        paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs)


# ----------------------------------------------------------------------------- Eq. 15, measured


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


@dataclass
class PullRow:
    """The PSP gradient on one layer's weights that comes from one layer's potentials."""

    source: str  # the layer whose z^2 term is differentiated (R_p in Eq. 14)
    norm: float  # || dR_p / dW ||
    share: float  # norm / sum of the norms over sources


def cross_layer_pull(model: nn.Module, x: torch.Tensor, layer: str = "conv1", lam: float = 1e-3,
                     normalization: str = "reference") -> list[PullRow]:
    """Split the PSP gradient on `layer`'s weights by the potentials it comes from (Eq. 14-15):
    the layer's own z (p = l) and every later layer's z (p > l; earlier layers give zero).

    Per source p, the term of the penalty that holds z_p alone (`psp_penalty`'s per-layer share:
    the full penalty is their sum) is differentiated with respect to `layer.weight` on input x.
    """
    weight = dict(model.named_parameters())[f"{layer}.weight"]
    _, potentials = capture(model, x)
    names = layer_names(model, list(potentials))
    count = len(potentials)
    grads = []
    for name, z in zip(names, potentials.values(), strict=True):
        term = psp_penalty({name: z}, lam, normalization)
        if normalization == "reference":
            term = term / count  # the full penalty is the mean over layers
        (g,) = torch.autograd.grad(term, weight, retain_graph=True, allow_unused=True)
        if g is not None:
            grads.append((name, float(g.norm())))
    total = sum(n for _, n in grads) or 1.0
    return [PullRow(name, n, n / total) for name, n in grads]


def pull_markdown(pulls: dict[str, list[PullRow]]) -> str:
    """`cross_layer_pull` for several target layers as a Markdown table: per target layer, the
    share of its PSP gradient norm coming from each source layer's potentials (Eq. 15)."""
    sources = list(dict.fromkeys(r.source for rows in pulls.values() for r in rows))
    head = ["weights of", *[f"from {s}'s z" for s in sources], "from later layers"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target, rows in pulls.items():
        share = {r.source: r.share for r in rows}
        later = sum(r.share for r in rows if r.source != target)
        cells = [target] + [f"{share[s]:.0%}" if s in share else "—" for s in sources]
        lines.append("| " + " | ".join([*cells, f"**{later:.0%}**"]) + " |")
    return "\n".join(lines) + "\n"
