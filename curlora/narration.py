"""The result sentences of the descriptive notebooks (01 CUR sampling, 02 U spectra), from their
numbers: a notebook displays what these return and writes no result of its own."""

from __future__ import annotations

import pandas as pd

from curlora.arms import Arm


def leverage_agreement(rho: float, rank: int, name: str) -> str:
    """How far a column's norm share orders the columns as statistical leverage does."""
    return (
        f"Spearman's rank correlation between a column's norm share and its top-{rank} statistical "
        f"leverage on {name}: {rho:.2f} (1 would mean the two orders agree)."
    )


def distance_from_uniform(table: pd.DataFrame) -> str:
    """Eq. 4's and the reference code's distance from uniform at the widest matrix of ``table``
    (total variation; index: width, columns: modes)."""
    widest = table.index.max()
    return (
        f"At {widest:,} columns, eq. 4 is {table.loc[widest, 'inverse']:.2f} from uniform in total "
        f"variation and the reference code's rule {table.loc[widest, 'inverse_eps']:.2f}."
    )


def selection_summary(summary: pd.DataFrame, rank: int, name: str, n_seeds: int) -> str:
    """Which rule repeats the most column picks, and what eq. 4's picks carry (``summary``: mean
    selection statistics per mode)."""
    worst = summary["C_duplicates"].idxmax()
    return (
        f"At r = {rank} on {name}, `{worst}` repeats the most column picks "
        f"({summary.loc[worst, 'C_duplicates']:.0%}, mean rank of C "
        f"{summary.loc[worst, 'C_rank']:.1f} of {rank}); `inverse` repeats "
        f"{summary.loc['inverse', 'C_duplicates']:.0%} and its C has "
        f"{summary.loc['inverse', 'C_norm']:.2f} times the norm of r average columns (`norm`: "
        f"{summary.loc['norm', 'C_norm']:.2f}). Means over {n_seeds} sampling seeds."
    )


def reconstruction(errors: pd.DataFrame, best: pd.DataFrame) -> str:
    """Classical CUR's error with norm and inverted sampling at the highest rank, beside the SVD's."""
    rank = errors["rank"].max()
    at = errors[errors["rank"] == rank].groupby("mode")["error"].mean()
    return (
        f"At rank {rank}, classical CUR leaves {at['norm']:.2f} of ‖W‖ with `norm` sampling and "
        f"{at['inverse']:.2f} with `inverse`; the best rank-{rank} approximation leaves "
        f"{best['error'].iloc[-1]:.2f}."
    )


def effective_step(medians: pd.DataFrame, seed: int) -> str | None:
    """Eq. 4 sampling's weight and output change per unit of update against each other sampling
    rule's (``medians``: ``analysis.effective_step_medians``); None without both."""
    step, shift = medians.iloc[:, 0], medians.iloc[:, 1]
    others = [a for a in step.index if a != "curlora" and Arm.parse(a).method == "curlora"]
    if "curlora" not in step.index or not others:
        return None
    return (
        "Per unit of update, eq. 4 sampling moves the weights and the layer outputs "
        + "; ".join(
            f"{step['curlora'] / step[a]:.2f}× and {shift['curlora'] / shift[a]:.2f}× as much as "
            f"{Arm.parse(a).sampling} sampling"
            for a in others
        )
        + f" (medians over layers, seed {seed}, each at its operating rate)."
    )
