"""Prose readings: numbers in, a verdict out, claiming only what the numbers show (one seed
cannot resolve a gap; a smoke run resolves nothing), beside what the paper says."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from psp_lite.data import CATALOG
from psp_lite.paper import PAPER_LAMBDA
from psp_lite.regularizers import WITH_LAMBDA, short_name
from psp_lite.report.effect import Gap
from psp_lite.report.stats import SummaryRow
from psp_lite.training.config import paper_config
from psp_lite.training.history import Groups

if TYPE_CHECKING:  # readings take these as numbers; they never run a sweep or draw a plot
    from psp_lite.report.figures import SpreadRow
    from psp_lite.training.history import SweepResult

SAME_SPREAD = 0.02  # weight std ratios within 2 % of 1 count as "about as wide"


def _gap(psp: SummaryRow, base: SummaryRow) -> str:
    """One sentence on PSP vs `base` in this run, with what the seeds allow us to say."""
    diff = base.ours_mean - psp.ours_mean
    name = short_name(base.regularizer)
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


def z2_reading(results: Groups, *, smoke: bool) -> str:
    """What Fig. 2b shows in this run: the final layer-mean <z^2> per regularizer and how it
    moved since the first epoch (geometric mean over seeds), beside the paper's description."""
    first, last = {}, {}
    for reg, hs in results.items():
        curves = np.log(np.array([h.z2 for h in hs], dtype=float))
        first[reg], last[reg] = float(np.exp(curves[:, 0].mean())), float(np.exp(curves[:, -1]
                                                                                  .mean()))
    epochs = len(next(iter(results.values()))[0].z2)
    moved = "; ".join(
        f"{short_name(r)} {last[r]:.3g} ({'up' if last[r] > first[r] else 'down'} from "
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
            text.append(f"PSP's is not the lowest here ({short_name(lowest)}'s is), "
                        "unlike the paper's Fig. 2b.")
    text.append("The paper describes <z^2> as growing without regularization, growing to a "
                "plateau with l2, and staying low and slowly falling with PSP.")
    if smoke:
        text.insert(0, "SMOKE RUN: after 1-2 epochs on a tiny subset these curves have not "
                       "settled; nothing below is evidence either way.")
    return " ".join(text)


def reading(rows: list[SummaryRow], *, smoke: bool) -> str:
    """A short reading of `rows` that claims only what the numbers show (one paragraph per
    dataset and model): PSP against each baseline in this run, then against the paper."""
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
        title = CATALOG[dataset].title if dataset in CATALOG else dataset
        lines = [f"{model} on {title}, {size}, mean test error over "
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


def spread_reading(rows: list[SpreadRow], *, smoke: bool) -> str:
    """What the spread table shows, layer by layer, beside what the paper says of Fig. 3:
    l2 keeps weights closer to zero than PSP, except in conv1, where PSP is the tighter one."""
    by_layer: dict[str, dict[str, SpreadRow]] = {}
    for r in rows:
        by_layer.setdefault(r.layer, {})[r.regularizer] = r
    pairs = {k: d for k, d in by_layer.items() if "l2" in d and "psp" in d}
    if not pairs:
        return "The table needs both l2 and PSP runs to compare them."
    ratios = {k: d["psp"].std / d["l2"].std for k, d in pairs.items()}

    def compared(q: float) -> str:
        if abs(q - 1) < SAME_SPREAD:
            return "about as wide as l2"
        return f"{'wider' if q > 1 else 'narrower'} than l2"

    said = "; ".join(f"{k}: PSP {compared(q)} (std ratio {q:.2f})" for k, q in ratios.items())
    text = [f"In these networks: {said}."]
    first, rest = next(iter(ratios)), list(ratios)[1:]
    text.append(f"The paper (Sec. 4.1, a typical trained LeNet5) describes l2 as typically "
                f"shrinking the weights more than PSP, except in {first}, where PSP's are the "
                "narrower.")
    if smoke:
        text.insert(0, "SMOKE RUN: a network trained for seconds has barely left its "
                       "initialization, so these spreads say nothing about the paper's claim.")
        return " ".join(text)
    expected = {first: False, **{k: True for k in rest}}  # paper: PSP wider except the first
    agree = [k for k, wider in expected.items()
             if abs(ratios[k] - 1) >= SAME_SPREAD and (ratios[k] > 1) == wider]
    text.append(f"{len(agree)} of the {len(ratios)} layers here match that "
                f"({', '.join(agree) or 'none'}); a std ratio within {SAME_SPREAD:.0%} of 1 "
                "counts as no difference.")
    return " ".join(text)


def standard_error(error_percent: float, n_test: int) -> float:
    """Binomial standard error (percentage points) of a test error measured on n_test images."""
    p = min(max(error_percent / 100, 0.0), 1.0)
    return 100 * math.sqrt(max(p * (1 - p), 1e-4) / max(n_test, 1))


def paired_differences(result: SweepResult, a: tuple[str, float], b: tuple[str, float]
                       ) -> list[float]:
    """Per seed that both hold, the late-epoch test error of run `a` minus run `b` (points): the
    same seed starts both from the same weights, so the difference leaves that noise out."""
    by_seed = {h.config.seed: h.late_error() for h in result.histories(*b)}
    return [h.late_error() - by_seed[h.config.seed] for h in result.histories(*a)
            if h.config.seed in by_seed]


def _worse(differences: list[float], mean_gap: float, noise: float) -> bool:
    """Is an end of a λ curve worse than its best λ? With 3 or more seeds: its seed-paired
    difference is resolved (`effect.Gap`) and positive; with fewer, the mean gap exceeds the
    test-set noise."""
    if len(differences) >= 3:
        g = Gap.of(differences, "best λ")
        return g.resolved and g.mean > 0
    return mean_gap > noise


def sweep_reading(result: SweepResult, *, smoke: bool) -> str:
    """What the final-error-vs-lambda curves show, in words, with the noise level stated: with
    three or more seeds an end of the curve counts as worse than the best λ only if their
    seed-paired difference is more than two standard errors from zero."""
    n_test = result.base.test_subset or CATALOG[result.base.dataset].sizes[1]
    base = result.baseline
    base_error = (float(np.mean([h.late_error() for h in result.histories("none", 0.0)]))
                  if base is not None else None)
    lines = []
    if smoke:
        lines.append("SMOKE RUN: a tiny subset and 1-2 epochs, so the numbers below only show "
                     "that the code runs; they say nothing about PSP or l2.")
    for reg in WITH_LAMBDA:
        points = result.final_errors(reg)
        if not points:
            continue
        lam, best = min(points, key=lambda item: item[1])
        noise = 2 * standard_error(best, n_test)
        small_key = ("none", 0.0) if base is not None else (reg, points[0][0])
        small = base_error if base is not None else points[0][1]
        large = points[-1][1]
        below = paired_differences(result, small_key, (reg, lam))  # > 0: the end is worse
        above = paired_differences(result, (reg, points[-1][0]), (reg, lam))
        text = f"{short_name(reg)}: lowest late-epoch test error {best:.2f} % at λ={lam:g}"
        if base is not None:
            text += (f" ({best - base_error:+.2f} points vs no regularization, "
                     f"{base_error:.2f} %")
            if len(below) > 1:
                paired = Gap.of([-d for d in below], "none")
                text += ("; per seed " + ", ".join(f"{-d:+.2f}" for d in below)
                         + f", paired {paired.mean:+.2f} ± {paired.stderr:.2f}")
            text += ")"
        text += f"; the largest λ={points[-1][0]:g} gives {large:.2f} %. "
        lower_end = _worse(below, small - best, noise)
        upper_end = _worse(above, large - best, noise)
        if lower_end and upper_end:
            text += ("Both ends are worse than the middle, beyond the noise (paired by seed): "
                     "a U-shaped curve, in this short protocol.")
        elif upper_end:
            text += ("Too much regularization clearly hurts, but below the best λ the curve is "
                     "flat within the noise: no clear U here (more epochs or less data would "
                     "let the unregularized net overfit more).")
        else:
            text += "The curve is flat within the noise."
        paper = PAPER_LAMBDA[reg]
        if base is not None and paper in result.lambdas(reg):
            at_paper = dict(points)[paper]
            text += (f" At the paper's λ={paper:g}: {at_paper:.2f} % "
                     f"({at_paper - base_error:+.2f} points vs no regularization).")
        lines.append(text)
    seeds = result.seeds
    spread = [np.ptp(e) for reg in WITH_LAMBDA for _, e in result.late_errors(reg) if len(e) > 1]
    per_lambda = (f"{seeds} seeds per λ, whose late-epoch errors differ by up to "
                  f"{max(spread):.1f} points" if spread else "one seed per λ")
    lines.append(f"Noise: two standard errors of a test error measured on {n_test} images are "
                 f"about ±{2 * standard_error(small if base else 10.0, n_test):.1f} points; "
                 f"{per_lambda}. Every run is tested on the same images, and a seed starts "
                 "every run from the same weights, so two λ are compared seed by seed (paired: "
                 "mean ± standard error over seeds).")
    return "\n".join(lines)
