"""The result sentences of the descriptive notebooks (01 CUR sampling, 02 U spectra, 05's figures,
06's continued training), from their numbers: a notebook displays what these return and writes no result of its own."""

from __future__ import annotations

import numpy as np
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


def spectra(layers: pd.DataFrame, rank: int, column: str = "delta_sv") -> str:
    """How many directions each arm's ΔW (or U) uses after the last task: singular values above
    numerical zero (median over layers), and how fast they fall from the first to the last."""
    from curlora.plots.updates import NUMERICAL_ZERO

    last = layers[(layers["stage"] == layers["stage"].max()) & (layers[column].map(len) > 0)]
    parts = []
    for arm, group in last.groupby("arm", sort=False):
        counts, falls = [], []
        for values in group[column]:
            sv = np.asarray(values, dtype=float)
            kept = sv[sv > NUMERICAL_ZERO * sv.max()] if sv.max() > 0 else sv[:0]
            counts.append(len(kept))
            if len(kept) > 1:
                falls.append(kept[0] / kept[-1])
        fall = f", the largest {np.median(falls):.3g}× the smallest kept" if falls else ""
        parts.append(f"{arm} {int(np.median(counts))} directions{fall}")
    what = "ΔW" if column == "delta_sv" else "U"
    return (
        f"After the last task, {what} uses (medians over layers of each layer's count and "
        "ratio) " + "; ".join(parts) + ". "
        f"CURLoRA's and LoRA's updates have rank at most r = {rank}: a count below {rank} means "
        "training used fewer directions than the adapter allows."
    )


def change_by_layer(layers: pd.DataFrame, value: str) -> str:
    """Which arm changes the layers most after the last task, and how much more than the least."""
    last = layers[layers["stage"] == layers["stage"].max()]
    per_arm = last.groupby("arm", sort=False)[value].median().sort_values()
    if len(per_arm) < 2:
        return ""
    most, least = per_arm.index[-1], per_arm.index[0]
    name = {"delta_rel": "‖ΔW‖/‖W‖", "output_shift": "the output shift"}.get(value, value)
    return (
        f"Median over layers after the last task, {name} is largest for {most} "
        f"({per_arm[most]:.3g}) and smallest for {least} ({per_arm[least]:.3g}, "
        f"{per_arm[most] / per_arm[least]:.3g}× less); in order: "
        + ", ".join(f"{a} {v:.3g}" for a, v in per_arm.items())
        + "."
    )


def sampling_frontiers(study, arms: list[str]) -> str:
    """Each sampling arm's learning range across its rates, and the range all of them reach
    (where they can be compared for the same learning)."""
    ranges = {}
    for arm in arms:
        # A rate where a run broke has no mean gain (Study.rate_plasticity leaves it out).
        gains = [i.mean * 100 for i in study.rate_plasticity(arm).values()]
        if gains:
            ranges[arm] = (min(gains), max(gains))
    if not ranges:
        return "No arm has a rate where every run held together, so none has a learning range."
    low = max(lo for lo, _ in ranges.values())
    high = min(hi for _, hi in ranges.values())
    shared = (
        f"All of them reach gains between {low:+.1f} and {high:+.1f} points: only there are they "
        "compared for the same learning."
        if high > low
        else "No gain is reached by all of them, so no two can be compared for the same learning "
        "over the whole set; pairs may still overlap."
    )
    skipped = [a for a in arms if a not in ranges]
    return (
        "Across their rates, the validation gain over head-only spans "
        + "; ".join(f"{a} {lo:+.1f} to {hi:+.1f} points" for a, (lo, hi) in ranges.items())
        + f". {shared}"
        + (f" ({', '.join(skipped)}: a run broke at every rate, so no gain.)" if skipped else "")
    )


def matched_vs_same_rate(table: pd.DataFrame) -> str:
    """Each pair's difference at one shared rate beside its difference at matched plasticity
    (``table``: ``tables.ablation_table``)."""

    def interval(row, prefix: str) -> str:
        mean, lo, hi = row[f"{prefix}_mean"], row[f"{prefix}_lo"], row[f"{prefix}_hi"]
        if not np.isfinite(mean):
            return "not defined"
        bounds = f" [{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else ""
        return f"{mean:+.1f}{bounds}"

    lines = []
    for _, row in table.iterrows():
        rate = f"at rate {row['rate']:g}" if np.isfinite(row["rate"]) else "at no shared rate"
        matched = interval(row, "matched")
        why = f" ({row['unmatched']})" if matched == "not defined" and row["unmatched"] else ""
        lines.append(
            f"- {row['label']}: {rate} {interval(row, 'same')}; at matched plasticity "
            f"{matched}{why}."
        )
    unit = table["unit"].iloc[0] if len(table) else ""
    return (
        f"In {unit}, 95% intervals over {int(table['n'].max()) if len(table) else 0} seeds "
        "(negative: eq. 4 changed perplexity less):\n\n" + "\n".join(lines)
    )


def _nats(mean: float, lo: float, hi: float) -> str:
    text = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else f"{mean:+.3f}"
    return text.replace("-", "−")


def seeds_read(table: pd.DataFrame) -> str:
    """How many seeds a frontier table's means are over: one count, or one per arm."""
    return seed_counts(table.groupby("arm", sort=False)["seeds"].max().to_dict())


def seed_counts(counts: dict[str, int]) -> str:
    """Seeds per arm as a reader wants them: one count if all agree, else one per arm."""
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} seed(s)"
    return "seeds per arm: " + ", ".join(f"{Arm.parse(a).display} {n}" for a, n in counts.items())


def continued_training(study) -> str:
    """What the two-axis frontier shows: each arm at its operating rate, which learned most and
    which forgot least, and where Wikipedia's NLL fell instead of rising."""
    table = study.frontier_table()
    chosen = table[table["operating"]].set_index("arm")
    name = {a: Arm.parse(a).display for a in chosen.index}
    each = [
        f"{name[a]} (rate {row['lr']:g}) learned "
        f"{_nats(row['learning_eval'], row['learning_eval_lo'], row['learning_eval_hi'])} "
        "nats per token on the evaluation files, and its Wikipedia NLL moved "
        f"{_nats(row['forgetting'], row['forgetting_lo'], row['forgetting_hi'])}"
        for a, row in chosen.iterrows()
    ]
    text = (
        f"At the rates validation picks (means over {seeds_read(table)}, 95% intervals): "
        + "; ".join(each)
        + ". "
    )
    if none := [Arm.parse(a).display for a in table["arm"].unique() if a not in chosen.index]:
        text += (
            f"{' and '.join(none)} {'have' if len(none) > 1 else 'has'} no operating rate: at "
            "every rate a run broke, or no seed ran all of its rates. "
        )
    if len(chosen) > 1:
        most, least = chosen["learning_eval"].idxmax(), chosen["forgetting"].idxmin()
        who = (
            f"{name[most]} both learned most and forgot least there"
            if most == least
            else f"{name[most]} learned most and {name[least]} forgot least there"
        )
        text += (
            f"By point estimate, {who} (the intervals say whether that order is more than "
            "noise); methods are compared for the same learning in the registered claims, not "
            "at these rates. "
        )
    fell = table[table["forgetting_hi"] < 0]
    if len(fell):
        text += (
            f"At {len(fell)} of {len(table)} arm-and-rate settings Wikipedia's mean NLL fell, "
            "with its whole interval over seeds below zero: on these windows, continued training "
            "on the domain lowered the NLL of held-out Wikipedia too, so forgetting reads "
            "negative there. These intervals hold the windows fixed and are not adjusted for "
            f"the {len(table)} settings; the registered claims carry the windows' noise and a Holm "
            "adjustment."
        )
    return text
