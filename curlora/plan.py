"""The pre-registered analysis plan: its claims, plasticity axis, selection rule and thresholds.

The plan is a file shipped with the package (``resources/analysis_plan.toml``), committed before
the confirmatory runs. The findings page prints its SHA-256, so a reader can check that the
analysis read is the one registered, and lists where the runs forced a deviation from it.

A registered plan never changes. An amendment is a new file beside it
(``analysis_plan.amendment-1.toml``, ``-2`` …) that names the SHA-256 of the plan it amends,
says why, and may only *add* to the design (rates, seeds and orders of arms the plan left open):
a value the plan registered cannot be changed by one, so the registered analysis stays the one
read. Amendments load with their plan, in order.
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
class Amendment:
    """A later file that adds to a registered plan's design, and why."""

    file: str
    registered: str
    reason: str
    sha256: str


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
    #: The amendments merged into ``design``, in the order they were registered.
    amendments: tuple[Amendment, ...] = ()

    def rates(self) -> dict[str, list[float]]:
        """Every arm's registered learning rates: the design's arms' and its secondary arms'."""
        return {**self.design.get("secondary", {}).get("rates", {}), **self.design.get("rates", {})}

    def secondary_arms(self) -> list[str]:
        """The arms registered beside the claims: the secondary peers, then exploratory arms
        run with them (empty until an amendment registers their rates)."""
        secondary = self.design.get("secondary", {})
        if "rates" not in secondary:
            return []
        return [*secondary.get("peers", []), *secondary.get("exploratory", [])]

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
    if a["multiplicity"] != "holm":
        problems.append(f"multiplicity {a['multiplicity']!r}: only 'holm' is implemented")
    if data["plan"]["status"] not in ("draft", "registered"):
        problems.append(f"status {data['plan']['status']!r} is not 'draft' or 'registered'")
    if len({c.key for c in claims}) < len(claims):
        problems.append("two claims share a key")
    if problems:
        raise ValueError(f"The analysis plan {path} is not usable: " + "; ".join(problems) + ".")
    sha256 = hashlib.sha256(raw).hexdigest()
    design, amendments = data["design"], []
    for amendment_path in amendment_paths(path):
        before = amendments[-1].sha256 if amendments else None
        amendment, design = _amend(design, amendment_path, path.name, sha256, before)
        amendments.append(amendment)
    # Whoever registers the secondary arms (the plan or an amendment), the same rules hold.
    _check_secondary(design, amendments[-1].file if amendments else _shown(path))
    return AnalysisPlan(
        title=data["plan"]["title"],
        status=data["plan"]["status"],
        registered=data["plan"]["registered"],
        code=data["plan"]["code"],
        design=design,
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
        sha256=sha256,
        file=_shown(path),
        amendments=tuple(amendments),
    )


def _shown(path: Path) -> str:
    """A plan file as a reader finds it: a shipped one by its path in the repository."""
    return f"curlora/resources/{path.name}" if path.parent == plan_path().parent else str(path)


def amendment_paths(path: str | Path) -> list[Path]:
    """The amendments beside the plan at ``path`` (``<plan>.amendment-<n>.toml``), in order."""
    path = Path(path)
    found = path.parent.glob(f"{path.stem}.amendment-*.toml")
    numbered = []
    for p in found:
        number = p.stem.rsplit("-", 1)[1]
        if not number.isdigit() or number != str(int(number)):
            raise ValueError(
                f"{p} is not a numbered amendment; name amendments "
                f"{path.stem}.amendment-1.toml, -2, … in the order they were registered."
            )
        numbered.append((int(number), p))
    numbers = sorted(n for n, _ in numbered)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(
            f"The amendments beside {path} are numbered {numbers}; they must run 1, 2, … with "
            "none missing, so a removed amendment cannot go unnoticed. Restore it."
        )
    return [p for _, p in sorted(numbered)]


def _amend(
    design: dict, path: Path, plan_name: str, plan_sha256: str, before: str | None
) -> tuple[Amendment, dict]:
    """An amendment file's record, and ``design`` with its additions (``before``: the SHA-256
    of the amendment before it, which a later amendment names)."""
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode())
    head = data.get("amendment", {})
    needed = ("amends", "amends_sha256", "registered", "reason")
    absent = [k for k in needed if k not in head]
    if absent:
        raise ValueError(
            f"The amendment {path} lacks {', '.join(absent)} in its [amendment] table; an "
            "amendment names the plan it amends, that plan's SHA-256, its date and its reason."
        )
    if head["amends"] != plan_name or head["amends_sha256"] != plan_sha256:
        raise ValueError(
            f"The amendment {path} amends {head['amends']} with SHA-256 "
            f"{head['amends_sha256'][:16]}…, but the plan beside it is {plan_name} with SHA-256 "
            f"{plan_sha256[:16]}…: a registered plan must not change after it is amended. "
            "Restore the registered plan, or write the change as a new amendment."
        )
    if before is not None and head.get("follows_sha256") != before:
        raise ValueError(
            f"The amendment {path} names the amendment before it as SHA-256 "
            f"{str(head.get('follows_sha256'))[:16]}…, but that file's SHA-256 is {before[:16]}…: "
            "an amendment must not change once a later one is registered. Restore it, or name "
            "its hash as follows_sha256 in a new amendment's [amendment] table."
        )
    unknown = set(data) - {"amendment", "design"}
    if unknown:
        raise ValueError(
            f"The amendment {path} has tables {sorted(unknown)}; an amendment may only add to "
            "the plan's [design] (claims and analysis rules stay as registered)."
        )
    merged = _added(design, data.get("design", {}), "design", path)
    record = Amendment(
        _shown(path), head["registered"], head["reason"], hashlib.sha256(raw).hexdigest()
    )
    return record, merged


def _check_secondary(design: dict, where: str) -> None:
    """The secondary arms' registration is whole and apart from the registered arms."""
    secondary = design.get("secondary", {})
    if "rates" not in secondary:
        return
    arms = [*secondary.get("peers", []), *secondary.get("exploratory", [])]
    registered = {*design.get("main_arms", []), *design.get("ablation_arms", [])}
    problems = [f"it lacks design.secondary.{k}" for k in ("seeds", "orders") if k not in secondary]
    problems += [
        f"{arm} has no rates in design.secondary.rates"
        for arm in arms
        if arm not in secondary["rates"]
    ]
    problems += [
        f"design.secondary.rates names {arm}, which is not a secondary peer or exploratory arm"
        for arm in secondary["rates"]
        if arm not in arms
    ]
    problems += [
        f"{arm} is a registered arm of the main comparison or the ablation, not a secondary one"
        for arm in arms
        if arm in registered or arm in design.get("rates", {})
    ]
    problems += [
        f"order {o!r} is not 'paper' or 'reverse'"
        for o in secondary.get("orders", [])
        if o not in ("paper", "reverse")
    ]
    if problems:
        raise ValueError(
            f"The secondary arms registered by {where} are not usable: " + "; ".join(problems) + "."
        )


def _added(base: dict, extra: dict, where: str, path: Path) -> dict:
    """``base`` with ``extra``'s entries added; an entry ``base`` already holds must be equal."""
    out = dict(base)
    for key, value in extra.items():
        if key not in base:
            out[key] = value
        elif isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _added(base[key], value, f"{where}.{key}", path)
        elif base[key] != value:
            raise ValueError(
                f"The amendment {path} sets {where}.{key} = {value!r}, but the plan registered "
                f"{base[key]!r}; an amendment may add to the design, never change it."
            )
    return out
