"""Notebook 06's figures: continued training's two-axis frontier and its training losses."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from curlora.arms import Arm
from curlora.domain_study import DomainStudy
from curlora.matching import on_rise
from curlora.plots.style import arm_color, figure, set_caption
from curlora.stats import t_interval

#: How the x axis names each split learning is read on.
SPLITS = {"val": "validation", "eval": "evaluation"}


def _points(study: DomainStudy, arm: str, split: str) -> pd.DataFrame:
    """Per rate: learning (on ``split``, nats) and forgetting (held-out Wikipedia, nats), means
    with 95% half-widths over seeds."""
    rows = []
    for lr in study.rates(arm):
        runs = study.runs_of(arm, lr)
        x = t_interval([r.learning(split) for r in runs])
        y = t_interval([r.forgetting("eval") for r in runs])
        rows.append(
            {
                "rate": lr,
                "x": x.mean,
                "xerr": np.nan_to_num(x.half),
                "y": y.mean,
                "yerr": np.nan_to_num(y.half),
            }
        )
    return pd.DataFrame(rows)


def domain_frontiers(
    study: DomainStudy, arms: list[str] | None = None, split: str = "val"
) -> Figure:
    """Forgetting against learning (read on ``split``: 'val' or 'eval'), both in nats per
    token: per arm, each learning rate's mean ± 95% CI over seeds, the operating rate ringed."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    fig, axes = figure(1, 1, width=6.4, height=4.4)
    ax = axes[0, 0]
    chosen = study.operating_rate()
    for k, arm in enumerate(arms or study.arms):
        points = _points(study, arm, split)
        color = arm_color(arm)
        # The line is the frontier the claims read (its rising part on validation, whichever
        # split x shows); a rate that learned less than a lower one is past breaking: hollow.
        val = points if split == "val" else _points(study, arm, "val")
        rise = on_rise(val["x"].to_numpy(), val["y"].to_numpy())
        for part, fmt, face in ((rise, "o-", color), (~rise, "o", "none")):
            ax.errorbar(
                points["x"][part],
                points["y"][part],
                xerr=points["xerr"][part],
                yerr=points["yerr"][part],
                fmt=fmt,
                color=color,
                mfc=face,
                label=Arm.parse(arm).display if part is rise else None,
                capsize=2,
                lw=1.5,
                ms=4,
            )
        at = points[points["rate"] == chosen[arm]].iloc[0]
        ax.plot(at["x"], at["y"], "o", ms=11, mfc="none", mec=color, mew=1.5)
        top = points.iloc[-1]
        ax.annotate(
            f"{top['rate']:g}",
            (top["x"], top["y"]),
            fontsize=7,
            color=color,
            xytext=(4, 4 + 9 * k),
            textcoords="offset points",
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set(
        xlabel=f"learned: target-domain {SPLITS[split]} NLL drop (nats/token)",
        ylabel="forgot: Wikipedia NLL rise (nats/token)",
    )
    ax.legend(fontsize=8)
    domain = study.runs[0].spec.domain
    set_caption(
        fig,
        f"Continued training on {domain}: each point one learning rate (the highest labelled), "
        f"ringed at the rate validation picks; {len(study.seeds)} seed(s), 95% intervals over "
        "seeds; the line joins rates that learned more on validation than every lower one (the "
        "frontier the claims read), hollow points learned less than a lower rate; below y = 0 "
        "the model got better at Wikipedia too",
    )
    return fig


def domain_losses(study: DomainStudy) -> Figure:
    """The training loss per step at each arm's operating rate (mean over seeds)."""
    fig, axes = figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    chosen = study.operating_rate()
    for arm in study.arms:
        losses = np.array([r.loss for r in study.runs_of(arm, chosen[arm])], dtype=float)
        ax.plot(
            np.arange(1, losses.shape[1] + 1),
            losses.mean(axis=0),
            color=arm_color(arm),
            label=f"{Arm.parse(arm).display} (lr {chosen[arm]:g})",
        )
    ax.set(xlabel="training step", ylabel="next-token loss (nats/token)")
    ax.legend(fontsize=8)
    set_caption(
        fig,
        f"Training loss on the domain's training files at each arm's operating rate, mean of "
        f"{len(study.seeds)} seed(s); each step is a new batch of blocks (no repeats)",
    )
    return fig
