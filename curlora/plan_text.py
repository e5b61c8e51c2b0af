"""What a findings page says about the plan it read: which plan, whether the runs are its design
(all of it, an interim part, or other runs), and where the analysis had to leave its rules."""

from __future__ import annotations

from collections.abc import Sequence

from curlora.arms import Arm
from curlora.cells import Cells
from curlora.design_check import DesignCheck
from curlora.plan import AnalysisPlan

#: The anchor of the plan line on a findings page (a README's brief line links to it).
PLAN_ANCHOR = "analysis-plan"


def _header(plan: AnalysisPlan) -> str:
    status = (
        f"registered {plan.registered}"
        if plan.status == "registered"
        else "a draft, not yet registered: its design waits for the pilot"
    )
    text = f"*Analysis plan* `{plan.file}` ({status}), SHA-256 `{plan.sha256[:16]}…`"
    for a in plan.amendments:
        text += f", amended by `{a.file}` ({a.registered}, SHA-256 `{a.sha256[:16]}…`)"
    return text


def _status(check: DesignCheck) -> str:
    """'unchecked', 'differs', 'interim' or 'design'."""
    if not check.checked:
        return "unchecked"
    if check.differs:
        return "differs"
    return "interim" if check.missing else "design"


def _page_status(cells: Sequence[Cells]) -> str | None:
    """The status every study shares, or None when they differ."""
    found = {_status(c.design) for c in cells}
    return found.pop() if len(found) == 1 else None


_STATUS = {
    "unchecked": "The runs were not compared with a design: the plan names none.",
    "differs": (
        "The runs read are not the plan's design, so the verdicts read them under its rules; "
        "they are not its confirmatory test."
    ),
    "interim": (
        "An interim look: not all of the design's runs are there yet, and the plan registers no "
        "interim analysis, so the verdicts are not its final ones."
    ),
    "design": "The runs read are the plan's design.",
}
#: One study's standing, when a page's studies stand differently.
_STUDY_STATUS = {
    "unchecked": "its runs were not compared with a design",
    "differs": (
        "its runs are not the plan's design, so the verdicts on them read them under its rules "
        "and are not its confirmatory test"
    ),
    "interim": (
        "an interim look at the plan's design (the plan registers no interim analysis, so the "
        "verdicts on it are not the final ones)"
    ),
    "design": "its runs are the plan's design",
}
#: The same, in the README's one sentence.
_BRIEF_STATUS = {
    "unchecked": "runs not compared with a design",
    "differs": "runs that are not its design (not its confirmatory test)",
    "interim": "an interim part of its design (not its final verdicts)",
    "design": "its design",
}


def _study_name(plan: AnalysisPlan, cells: Cells) -> str:
    """A reader's name for one study of a page: the part of the design it holds."""
    main = set(plan.design.get("main_arms", []))
    ablation = set(plan.design.get("ablation_arms", []))
    if set(cells.arms) & set(plan.secondary_arms()):
        return "The peers' comparison"
    if set(cells.arms) & (main - ablation):
        return "The main comparison"
    if set(cells.arms) & (ablation - main):
        return "The sampling ablation"
    return "Runs of " + ", ".join(Arm.parse(a).display for a in cells.arms)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _phrases(cells: Cells) -> list[str]:
    return [*cells.design.differs, *cells.design.missing, *cells.design.outside]


def design_details(plan: AnalysisPlan, cells: Sequence[Cells]) -> str:
    """How the runs stand against the design, as sentences: what every study shares, then each
    study's own phrases under its name ("" when there is nothing to say)."""
    shared = [p for p in _phrases(cells[0]) if all(p in _phrases(c) for c in cells)]
    parts = [_sentence("; ".join(shared))] if shared else []
    for c in cells:
        own = [p for p in _phrases(c) if p not in shared]
        if own:
            parts.append(f"{_study_name(plan, c)}: " + "; ".join(own))
    return ". ".join(parts) + "." if parts else ""


def _study_text(plan: AnalysisPlan, cells: Cells) -> str:
    """One study's standing, what differs or is missing, and its own analysis deviations."""
    text = f"{_study_name(plan, cells)}: {_STUDY_STATUS[_status(cells.design)]}"
    if _phrases(cells):
        text += " — " + "; ".join(_phrases(cells))
    text += "."
    if cells.deviations:
        text += " Its analysis leaves the plan's rules: " + "; ".join(cells.deviations) + "."
    return text


def plan_line(plan: AnalysisPlan, cells: Sequence[Cells], anchor: str = PLAN_ANCHOR) -> str:
    """The findings page's paragraph on its plan: which plan, whether the runs are its design
    and how they are not, and every deviation from its analysis."""
    text = [
        f'<a id="{anchor}"></a>{_header(plan)}: {len(plan.claims)} claims, Holm at '
        f"α = {plan.familywise_alpha:g}, plasticity on the {plan.plasticity_axis.upper()} axis."
    ]
    shared = _page_status(cells)
    if shared is None:
        text += [_study_text(plan, c) for c in cells]
    else:
        text.append(_STATUS[shared])
        details = design_details(plan, cells)
        if details:
            text.append(details)
        deviations = list(dict.fromkeys(d for c in cells for d in c.deviations))
        if deviations:
            text.append("Deviations from the plan's analysis: " + "; ".join(deviations) + ".")
    text.append("Readings the plan does not name are exploratory.")
    return " ".join(text)


def plan_brief(plan: AnalysisPlan, cells: Sequence[Cells], link: str) -> str:
    """One sentence for a README: which plan, and whether the runs are its design (``link``:
    the findings page's plan paragraph)."""
    shared = _page_status(cells)
    if shared is None:
        parts = [
            f"{_study_name(plan, c).lower()} reads {_BRIEF_STATUS[_status(c.design)]}"
            for c in cells
        ]
        return f"{_header(plan)}: " + "; ".join(parts) + f" ([details]({link}))."
    text = {
        "unchecked": f"the runs were not compared with a design ([the plan]({link}) names none).",
        "differs": (
            f"the runs read are not its design ([how they differ]({link})), so these verdicts "
            "read them under its rules; they are not its confirmatory test."
        ),
        "interim": (
            f"an interim look ([what is missing]({link})); the plan registers no interim "
            "analysis, so these verdicts are not its final ones."
        ),
        "design": f"the runs read are its design ([details]({link})).",
    }[shared]
    return f"{_header(plan)}: {text}"
