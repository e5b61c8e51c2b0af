"""Intervals as text: what an interval excludes, in the units a reader thinks in.

Every verdict and table prints its numbers through these functions, so one interval reads the
same everywhere: percent changes for small ratios, factors from ×2 on, points for accuracy,
"n = … seeds" and the smallest detectable effect beside every "none shown".
"""

from __future__ import annotations

import math

import pandas as pd

from curlora.outcomes import OUTCOMES
from curlora.stats import Interval, t_interval


def _phrase(
    values: tuple[float, float, float], i: Interval, mde: float, unit: str, digits: int, what: str
) -> str:
    """An interval's reading as what the data exclude; ``values`` = (mean, lo, hi) as shown."""
    mean, lo, hi = values
    f = f"{{:+.{digits}f}}"
    span = f"{f.format(mean)}{unit} [{f.format(lo)}, {f.format(hi)}], n = {i.n} seeds"
    detect = f"smallest detectable ≈ {mde:.{digits}f}{unit}"
    if lo > 0:
        return f"{span}: {what} is positive, at least {lo:.{digits}f}{unit} ({detect})"
    if hi < 0:
        return f"{span}: {what} is negative, at least {-hi:.{digits}f}{unit} in size ({detect})"
    bound = max(abs(lo), abs(hi))
    return f"{span}: none shown; one larger than {bound:.{digits}f}{unit} is excluded ({detect})"


def reading(
    i: Interval, scale: float = 1.0, unit: str = "", digits: int = 3, what: str = "the difference"
) -> str:
    """What an interval says, as the data's exclusions: 'excludes an effect larger than …'."""
    if i.n == 0:
        return "no runs"
    if i.n < 2:
        return f"{i.mean * scale:+.{digits}f}{unit} from one seed (no interval)"
    return _phrase(
        (i.mean * scale, i.lo * scale, i.hi * scale), i, i.detectable() * scale, unit, digits, what
    )


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def factor(ratio: float) -> str:
    """A perplexity ratio as a factor: '×1.82', '×16.4', '×242', and beyond ×1,000 (or below
    ×0.001) as an order of magnitude, '×2×10⁶', which a reader takes in at a glance."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "—"
    if 1e-3 <= ratio < 1e3:
        return f"×{ratio:.3g}"
    exponent = math.floor(math.log10(ratio))
    return f"×{ratio / 10**exponent:.0f}×10{str(exponent).translate(_SUPERSCRIPT)}"


#: Ratios reaching this factor read as factors (×16.4), smaller ones as percent changes (+1.13%).
FACTOR_FROM = 2.0


def ratio_reading(log_ratio: Interval, what: str = "the change") -> str:
    """An interval on the log scale of perplexity (a ratio, or a ratio of ratios): in percent
    for small changes, as factors once it reaches ×2 (a +3,120,503% change reads as ×31,206)."""
    i = log_ratio
    if i.n < 2:
        return (
            "no interval"
            if i.n == 0
            else f"{(math.exp(i.mean) - 1) * 100:+.2f}% from one seed (no interval)"
        )
    if max(abs(i.lo), abs(i.hi)) < math.log(FACTOR_FROM):
        pct = tuple((math.exp(v) - 1) * 100 for v in (i.mean, i.lo, i.hi))
        return _phrase(pct, i, (math.exp(i.detectable()) - 1) * 100, "%", 2, what)
    mean, lo, hi = (math.exp(v) for v in (i.mean, i.lo, i.hi))
    span = f"{factor(mean)} [{factor(lo)}, {factor(hi)}], n = {i.n} seeds"
    detect = f"smallest detectable factor ≈ {factor(math.exp(i.detectable()))}"
    if lo > 1:
        return f"{span}: {what} is an increase, at least {factor(lo)} ({detect})"
    if hi < 1:
        return f"{span}: {what} is a decrease, to at most {factor(hi)} ({detect})"
    return (
        f"{span}: none shown; a factor above {factor(hi)} or below {factor(lo)} is excluded "
        f"({detect})"
    )


def difference_reading(i: Interval, outcome: str) -> str:
    """A difference between arms on an outcome (``curlora.outcomes``), on its display scale: a
    ratio of perplexity ratios in % (or as factors), forgetting in points."""
    o = OUTCOMES[outcome]
    if o.scale == "ratio":
        return ratio_reading(i, "the difference")
    return reading(i, o.shown(1.0), o.unit, o.digits)


def verdict_label(i: Interval, lower_is: str, higher_is: str, neither: str) -> str:
    """A verdict label from an interval: below zero, above zero, or neither shown."""
    if i.n < 2:
        return "**Undecided** (fewer than two seeds)"
    if i.hi < 0:
        return lower_is
    if i.lo > 0:
        return higher_is
    return neither


def percent(log_ratio: Interval) -> str:
    """A log-ratio interval as '+1.23% [+0.50, +2.00]', or as factors once it reaches ×2."""
    values = (log_ratio.mean, log_ratio.lo, log_ratio.hi)
    if math.isnan(log_ratio.se):
        values = values[:1]
    if max(abs(v) for v in values) >= math.log(FACTOR_FROM):
        shown = [factor(math.exp(v)) for v in values]
    else:
        shown = [f"{(math.exp(v) - 1) * 100:+.2f}%" for v in values]
    return shown[0] if len(shown) == 1 else f"{shown[0]} [{shown[1]}, {shown[2]}]"


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index as the first column)."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in table.iterrows():
        cells = [
            f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else str(v)
            for v in row
        ]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def interval_text(
    i: Interval, digits: int = 3, scale: float = 1.0, unit: str = "", signed: bool = True
) -> str:
    """'+0.024 [−0.010, +0.058]' (or unsigned, for levels such as accuracy), scaled (e.g. to
    points); the mean alone when there is no interval."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if math.isnan(i.se):
        return f.format(i.mean * scale) + unit
    return f"{f.format(i.mean * scale)}{unit} [{f.format(i.lo * scale)}, {f.format(i.hi * scale)}]"


def geometric_mean_ci(values: list[float], digits: int = 2) -> str:
    """'29.4 [3.07, 281]': the geometric mean of positive values and its 95% interval, read on
    the log scale (an arithmetic ± around a ratio that explodes in one seed reaches below zero)."""
    i = t_interval([math.log(v) for v in values])
    shown = f"{math.exp(i.mean):.{digits}g}" if i.mean == i.mean else "–"
    return shown + (
        "" if math.isnan(i.se) else f" [{math.exp(i.lo):.{digits}g}, {math.exp(i.hi):.{digits}g}]"
    )


def mean_pm(i: Interval, digits: int = 3) -> str:
    """'0.608 ± 0.018': a mean and the half-width of its interval (the mean alone without one)."""
    return f"{i.mean:.{digits}f}" + ("" if math.isnan(i.se) else f" ± {i.half:.{digits}f}")
