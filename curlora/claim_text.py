"""The plan's claims in words a practitioner reads in two minutes: values on their display
scale, ranges instead of brackets, the decision box, the claims and robustness tables.

Perplexity changes read as percentages up to ×2, as factors up to ×1,000 and as orders of
magnitude beyond (×3×10⁴), so no interval prints as ×2,334,356,937,053. Every sentence is
assembled from a ``claims.Reading``; nothing is written ahead of the numbers.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats as _st

from curlora.arms import Arm
from curlora.claims import Reading, Robustness
from curlora.readings import factor
from curlora.stats import Interval


def ratio_text(log_ratio: float) -> str:
    """A ratio (given as its log) as '+17%', '×16' or '×3×10⁴' (orders of magnitude)."""
    if not math.isfinite(log_ratio):
        return "—"
    ratio = math.exp(log_ratio)
    if 0.5 < ratio < 2:
        pct = (ratio - 1) * 100
        return _minus(f"{pct:+.1f}%" if abs(pct) < 10 else f"{pct:+.0f}%")
    if 10 <= ratio < 1e3:
        return f"×{ratio:.0f}"
    return factor(ratio) if ratio >= 1e3 or ratio < 1e-3 else f"×{ratio:.2g}"


def level_text(level: float) -> str:
    """A confidence level: '95%', '98.75%'."""
    return f"{level * 100:.4g}%"


def value_text(outcome: str, value: float) -> str:
    """A value on its display scale: perplexity as a ratio, forgetting in points."""
    if not math.isfinite(value):
        return "—"
    if outcome == "ppl_ratio":
        return ratio_text(value)
    if outcome == "forgetting":
        return _minus(f"{value * 100:+.1f} pts")
    return _minus(f"{value:+.3g}")


def _minus(text: str) -> str:
    """A typographic minus sign, as a reader expects it."""
    return text.replace("-", "−")


def range_text(outcome: str, lo: float, hi: float) -> str:
    """'between +8% and +28%' (a range a person reads; '—' when there is none)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    return f"between {value_text(outcome, lo)} and {value_text(outcome, hi)}"


def _display(arm: str) -> str:
    return Arm.parse(arm).display


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def anchor(reading: Reading) -> str:
    """The id of a claim's full reading on the findings page."""
    return f"claim-{reading.claim.key}"


def claim_sentence(r: Reading, trainable: dict[str, int] | None = None) -> str:
    """One plain line: the decision it supports, the number, the range at the claim's Holm
    level, the adjusted p-value (and, given ``trainable`` per arm, what each arm trains)."""
    c = r.claim
    if not r.readable:
        return f"**{c.statement}: not read** — {r.reason}."
    value = value_text(c.outcome, r.estimate.value)
    lo, hi = r.interval(adjusted=True)
    where = (
        f"{range_text(c.outcome, lo, hi)} at {level_text(r.level)} confidence; "
        f"Holm-adjusted p of the claim {_p(r.p_holm)}"
    )
    if c.kind == "matched":
        a, b = _display(c.arm), _display(c.against)
        what = "perplexity" if c.outcome == "ppl_ratio" else "earlier tasks' accuracy"
        # Signed, one phrasing for every verdict: "by −0.5% less" would read as its opposite.
        relative = (
            f"{a}'s perplexity change against {b}'s is {value}"
            if c.outcome == "ppl_ratio"
            else f"{a}'s forgetting minus {b}'s is {value}"
        )
        decision = {
            "holds": f"**Prefer {a} to {b} to keep {what}**",
            "contradicted": f"**Do not pick {a} over {b} to keep {what}**",
        }.get(r.verdict, f"**No basis to choose {a} or {b} to keep {what}**")
        reach = (
            f" (where both reach {r.learning[0]:.2g} to {r.learning[1]:.2g}, {r.learning_axis})"
            if r.learning
            else ""
        )
        head = f"{decision}: for the same learning{reach}, {relative}"
        cost = ""
        if trainable and c.arm in trainable and c.against in trainable:
            cost = f" {a} trains {trainable[c.arm]:,} parameters, {b} {trainable[c.against]:,}."
        return f"{head} ({where}).{cost}"
    arm = _display(c.arm)
    threshold = f"{(c.threshold - 1) * 100:g}%" if c.kind == "within" else f"×{c.threshold:g}"
    if c.kind == "above":
        label = {
            "holds": f"**{arm}'s perplexity at least doubles**",
            "contradicted": f"**{arm}'s perplexity does not double**",
            "undecided": f"**Whether {arm}'s perplexity doubles is undecided**",
        }[r.verdict]
    else:
        label = {
            "holds": f"**{arm} keeps perplexity within ±{threshold}**",
            "contradicted": f"**{arm} does not keep perplexity within ±{threshold}**",
            "undecided": f"**Whether {arm} keeps perplexity within ±{threshold} is undecided**",
        }[r.verdict]
    precision = ""
    if c.kind == "within" and r.verdict == "undecided" and math.isfinite(lo):
        # Two one-sided tests at the Holm step's level: the band is shown only if the estimate
        # stands t(level)·SE inside both edges, which no estimate can when that exceeds the band.
        e = r.estimate
        if _st.t.ppf(r.level, e.df) * e.se >= math.log(c.threshold):
            precision = (
                f" At this level no estimate these runs could give would show it within "
                f"±{threshold}: t·SE exceeds the band, so undecided here reflects their precision."
            )
    return f"{label} at the rate validation picks: {value} ({where}).{precision}"


def decision_box(
    readings: list[Reading],
    robust: Robustness | None,
    page: str = "",
    trainable: dict[str, int] | None = None,
) -> str:
    """At most six lines a practitioner can act on, each linking its full reading on ``page``
    (a path to the findings page, or '' on the page itself); ``trainable`` per arm adds what
    each compared arm trains."""
    lines = []
    for r in readings[:6]:
        text = claim_sentence(r, trainable)
        if robust is not None and r.readable and robust.fragile(r.claim.key, r.verdict):
            text += " *Fragile: one seed or order left out changes it.*"
        text += f" [Details]({page}#{anchor(r)})"
        lines.append(f"> - {text}")
    return "> **Decision box** (the pre-registered claims, read from the runs)\n>\n" + "\n".join(
        lines
    )


def claims_table(readings: list[Reading], before: dict[str, Interval]) -> pd.DataFrame:
    """Every claim: estimate, 95% interval, Holm-adjusted p and interval, the seed t-interval
    of the analysis before the plan, verdict."""
    rows = []
    for r in readings:
        c = r.claim
        lo, hi = r.interval()
        alo, ahi = r.interval(adjusted=True)
        old = before.get(c.key)
        rows.append(
            {
                "claim": c.statement,
                "estimate": value_text(c.outcome, r.estimate.value) if r.readable else "—",
                "95% interval": f"{value_text(c.outcome, lo)} to {value_text(c.outcome, hi)}"
                if r.readable
                else r.reason,
                "p (Holm)": _p(r.p_holm),
                "interval at its Holm level": f"{value_text(c.outcome, alo)} to "
                f"{value_text(c.outcome, ahi)} ({level_text(r.level)})"
                if r.readable
                else "—",
                "seeds": r.estimate.n if r.estimate is not None else 0,
                "t over seeds, before the plan": f"{value_text(c.outcome, old.lo)} to "
                f"{value_text(c.outcome, old.hi)}"
                if old is not None and old.n > 1
                else "—",
                "verdict": r.verdict,
            }
        )
    return pd.DataFrame(rows).set_index("claim")


def robustness_table(readings: list[Reading], robust: Robustness) -> pd.DataFrame:
    """Each claim's verdict with all runs and with each seed or task order left out."""
    rows = {}
    for r in readings:
        row = {"all runs": r.verdict}
        row.update(dict(zip(robust.variants, robust.verdicts[r.claim.key], strict=True)))
        row["fragile"] = "yes" if robust.fragile(r.claim.key, r.verdict) else "no"
        rows[r.claim.key] = row
    table = pd.DataFrame(rows).T
    table.index.name = "claim"
    return table
