"""What a findings page says about the plan it read: which plan, whether the runs are its design
(all of it, an interim part, or other runs), and where the analysis had to leave its rules."""

from __future__ import annotations

from collections.abc import Sequence

from curlora.arms import Arm
from curlora.cells import Cells
from curlora.plan import AnalysisPlan

#: The anchor of the plan line on a findings page (a README's brief line links to it).
PLAN_ANCHOR = "analysis-plan"


def _header(plan: AnalysisPlan) -> str:
    status = (
        f"registered {plan.registered}"
        if plan.status == "registered"
        else "a draft, not yet registered: its design waits for the pilot"
    )
    return f"*Analysis plan* `{plan.file}` ({status}), SHA-256 `{plan.sha256[:16]}…`"


def _status(cells: Sequence[Cells]) -> str:
    """'unchecked', 'differs', 'interim' or 'design'."""
    checks = [c.design for c in cells]
    if not any(c.checked for c in checks):
        return "unchecked"
    if any(c.differs for c in checks):
        return "differs"
    return "interim" if any(c.missing for c in checks) else "design"


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


def _study_name(plan: AnalysisPlan, cells: Cells) -> str:
    """A reader's name for one study of a page: the part of the design it holds."""
    main = set(plan.design.get("main_arms", []))
    ablation = set(plan.design.get("ablation_arms", []))
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


def plan_line(plan: AnalysisPlan, cells: Sequence[Cells], anchor: str = PLAN_ANCHOR) -> str:
    """The findings page's paragraph on its plan: which plan, whether the runs are its design
    and how they are not, and every deviation from its analysis."""
    deviations = list(dict.fromkeys(d for c in cells for d in c.deviations))
    text = [
        f'<a id="{anchor}"></a>{_header(plan)}: {len(plan.claims)} claims, Holm at '
        f"α = {plan.familywise_alpha:g}, plasticity on the {plan.plasticity_axis.upper()} axis.",
        _STATUS[_status(cells)],
    ]
    details = design_details(plan, cells)
    if details:
        text.append(details)
    if deviations:
        text.append("Deviations from the plan's analysis: " + "; ".join(deviations) + ".")
    text.append("Readings the plan does not name are exploratory.")
    return " ".join(text)


def plan_brief(plan: AnalysisPlan, cells: Sequence[Cells], link: str) -> str:
    """One sentence for a README: which plan, and whether the runs are its design (``link``:
    the findings page's plan paragraph)."""
    status = _status(cells)
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
    }[status]
    return f"{_header(plan)}: {text}"
