"""The pre-registered analysis plan: its claims, plasticity axis, selection rule and thresholds.

The plan is a file shipped with the package (``resources/analysis_plan.toml``), committed before
the confirmatory runs. The findings page prints its SHA-256, so a reader can check that the
analysis read is the one registered, and lists where the runs forced a deviation from it.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("above", "within", "matched")
AXES = ("nll", "brier", "accuracy")
SELECTIONS = ("final_val_nll", "own_plasticity", "domain_val_nll")


@dataclass(frozen=True)
class Claim:
    """One headline claim of the Holm family."""

    key: str
    statement: str
    kind: str  # "above", "within" or "matched"
    arm: str
    outcome: str
    against: str | None = None  # the other arm of a "matched" claim
    threshold: float | None = None  # a ratio for "above" and "within"

    def arms(self) -> tuple[str, ...]:
        """The arms the claim reads."""
        return (self.arm,) if self.against is None else (self.arm, self.against)


@dataclass(frozen=True)
class AnalysisPlan:
    """The registered analysis: what is read, how, and at what error rate."""

    title: str
    status: str  # "draft" (design not yet fixed) or "registered"
    registered: str
    code: str
    design: dict
    plasticity_axis: str
    secondary_axis: str
    selection: str
    levels: tuple[float, ...]
    grid_levels: int
    confidence: float
    bootstrap_replicates: int
    bootstrap_seed: int
    multiplicity: str
    familywise_alpha: float
    robustness: tuple[str, ...]
    claims: tuple[Claim, ...]
    sha256: str
    #: Where the plan was read from, as a reader finds it (a shipped plan: its path in the repo).
    file: str = "curlora/resources/analysis_plan.toml"

    def claim(self, key: str) -> Claim:
        """The claim named ``key``."""
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"The plan has no claim {key!r}; it has {[c.key for c in self.claims]}.")


#: Each protocol's registered plan: the paper's task sequence, and continued training on a domain.
PLANS = {"paper": "analysis_plan.toml", "domain": "analysis_plan_domain.toml"}


def plan_path(protocol: str = "paper") -> Path:
    """Where a protocol's registered plan ships with the package."""
    if protocol not in PLANS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PLANS)}.")
    return Path(str(resources.files("curlora") / "resources" / PLANS[protocol]))


def load_plan(path: str | Path | None = None, protocol: str = "paper") -> AnalysisPlan:
    """The analysis plan at ``path`` (default: ``protocol``'s registered one), checked field by
    field."""
    path = plan_path(protocol) if path is None else Path(path)
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode())
    a = data["analysis"]
    claims = tuple(Claim(**c) for c in data["claims"])
    problems = [
        f"claim {c.key!r}: kind {c.kind!r} is not one of {KINDS}"
        for c in claims
        if c.kind not in KINDS
    ]
    problems += [
        f"claim {c.key!r}: a {c.kind!r} claim needs a threshold"
        for c in claims
        if c.kind in ("above", "within") and c.threshold is None
    ]
    problems += [
        f"claim {c.key!r}: a matched claim needs 'against'"
        for c in claims
        if c.kind == "matched" and c.against is None
    ]
    if a["plasticity_axis"] not in AXES:
        problems.append(f"plasticity_axis {a['plasticity_axis']!r} is not one of {AXES}")
    if a["selection"] not in SELECTIONS:
        problems.append(f"selection {a['selection']!r} is not one of {SELECTIONS}")
    if data["plan"]["status"] not in ("draft", "registered"):
        problems.append(f"status {data['plan']['status']!r} is not 'draft' or 'registered'")
    if len({c.key for c in claims}) < len(claims):
        problems.append("two claims share a key")
    if problems:
        raise ValueError(f"The analysis plan {path} is not usable: " + "; ".join(problems) + ".")
    return AnalysisPlan(
        title=data["plan"]["title"],
        status=data["plan"]["status"],
        registered=data["plan"]["registered"],
        code=data["plan"]["code"],
        design=data["design"],
        plasticity_axis=a["plasticity_axis"],
        secondary_axis=a["secondary_axis"],
        selection=a["selection"],
        levels=tuple(a["levels"]),
        grid_levels=int(a["grid_levels"]),
        confidence=float(a["confidence"]),
        bootstrap_replicates=int(a["bootstrap_replicates"]),
        bootstrap_seed=int(a["bootstrap_seed"]),
        multiplicity=a["multiplicity"],
        familywise_alpha=float(a["familywise_alpha"]),
        robustness=tuple(a["robustness"]),
        claims=claims,
        sha256=hashlib.sha256(raw).hexdigest(),
        file=f"curlora/resources/{path.name}" if path.parent == plan_path().parent else str(path),
    )
