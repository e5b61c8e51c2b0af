"""Notebook 06's figures: continued training's two-axis frontier and its training losses."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from curlora.arms import Arm
from curlora.domain_study import DomainStudy
from curlora.matching import on_rise
from curlora.narration import seed_counts, seeds_read
from curlora.plots.style import arm_color, figure, set_caption

#: How the x axis names each split learning is read on.
SPLITS = {"val": "validation", "eval": "evaluation"}


def _points(table: pd.DataFrame, arm: str, split: str) -> pd.DataFrame:
    """Per rate of ``arm`` in a ``frontier_table``: learning (on ``split``) and forgetting
    (held-out Wikipedia), in nats, means with their 95% half-widths."""
    rows = table[table["arm"] == arm]
    x, y = f"learning_{split}", "forgetting"
    return pd.DataFrame(
        {
            "rate": rows["lr"].to_numpy(),
            "x": rows[x].to_numpy(),
            "xerr": np.nan_to_num((rows[f"{x}_hi"] - rows[f"{x}_lo"]).to_numpy() / 2),
            "y": rows[y].to_numpy(),
            "yerr": np.nan_to_num((rows[f"{y}_hi"] - rows[f"{y}_lo"]).to_numpy() / 2),
        }
    )


def domain_frontiers(
    study: DomainStudy, arms: list[str] | None = None, split: str = "val"
) -> Figure:
    """Forgetting against learning (read on ``split``: 'val' or 'eval'), both in nats per
    token: per arm, each learning rate's mean ± 95% CI over the seeds that ran every rate of
    the arm, the operating rate ringed."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    fig, axes = figure(1, 1, width=6.4, height=4.4)
    ax = axes[0, 0]
    table = study.frontier_table()
    chosen = table[table["operating"]].set_index("arm")["lr"]
    for k, arm in enumerate(arms or study.arms):
        points = _points(table, arm, split)
        color = arm_color(arm)
        # The line is the frontier the claims read (its rising part on validation, whichever
        # split x shows); a rate that learned less than a lower one is past breaking: hollow.
        val = points if split == "val" else _points(table, arm, "val")
        rise = on_rise(val["x"].to_numpy(), val["y"].to_numpy())
        defined = np.isfinite(points["x"].to_numpy()) & np.isfinite(points["y"].to_numpy())
        for part, fmt, face in ((rise & defined, "o-", color), (~rise & defined, "o", "none")):
            ax.errorbar(
                points["x"][part],
                points["y"][part],
                xerr=points["xerr"][part],
                yerr=points["yerr"][part],
                fmt=fmt,
                color=color,
                mfc=face,
                label=Arm.parse(arm).display if fmt == "o-" else None,
                capsize=2,
                lw=1.5,
                ms=4,
            )
        if arm in chosen.index:  # an arm with no choosable rate has no ring
            at = points[points["rate"] == chosen[arm]].iloc[0]
            ax.plot(at["x"], at["y"], "o", ms=11, mfc="none", mec=color, mew=1.5)
        drawn = points.dropna(subset=["x", "y"])
        if drawn.empty:
            continue
        top = drawn.iloc[-1]
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
    broke = (
        "; a rate where a run broke (its loss or NLL not a number) has no mean and is not drawn"
        if table["broke"].any()
        else ""
    )
    set_caption(
        fig,
        f"Continued training on {domain}: each point one learning rate (the highest labelled), "
        f"ringed at the rate validation picks; {seeds_read(table)} (those that ran every rate of "
        "the arm), 95% intervals over seeds; the line joins rates that learned more on "
        "validation than every lower one (the frontier the claims read), hollow points learned "
        f"less than a lower rate; below y = 0 the model got better at Wikipedia too{broke}",
    )
    return fig


def domain_losses(study: DomainStudy) -> Figure:
    """The training loss per step at each arm's operating rate (mean over the arm's seeds)."""
    fig, axes = figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    chosen, seeds = study.operating_rate(), study.arm_seeds()
    for arm in chosen:
        runs = [r for r in study.runs_of(arm, chosen[arm]) if r.spec.seed in seeds[arm]]
        losses = np.array([r.loss for r in runs], dtype=float)
        ax.plot(
            np.arange(1, losses.shape[1] + 1),
            losses.mean(axis=0),
            color=arm_color(arm),
            label=f"{Arm.parse(arm).display} (lr {chosen[arm]:g})",
        )
    ax.set(xlabel="training step", ylabel="next-token loss (nats/token)")
    ax.legend(fontsize=8)
    over = seed_counts({arm: len(seeds[arm]) for arm in chosen})
    unchosen = [Arm.parse(a).display for a in study.arms if a not in chosen]
    set_caption(
        fig,
        f"Training loss on the domain's training files at each arm's operating rate, mean of "
        f"{over} (those that ran every rate of the arm); each step is a new batch of blocks (no "
        "repeats)"
        + (
            f"; not drawn, no operating rate (at every rate a run broke, or no seed ran all its "
            f"rates): {', '.join(unchosen)}"
            if unchosen
            else ""
        ),
    )
    return fig
