"""Protocol 2's part of the findings page: its registered claims read from the runs, with the
decision box, Holm-adjusted intervals, robustness and the frontier table — every sentence
assembled from the numbers."""

from __future__ import annotations

import pandas as pd

from curlora.claim_text import claims_table, decision_box, robustness_table
from curlora.claims import read_claims, robustness, seed_t_interval
from curlora.domain_study import DomainStudy
from curlora.findings import Findings, claim_section
from curlora.peer_table import BenchCosts, forgets_least, peer_markdown
from curlora.plan import AnalysisPlan, load_plan
from curlora.plan_text import plan_brief, plan_line
from curlora.readings import markdown_table

#: The anchor protocol 2's section opens with (the README's box links to it).
SECTION = "protocol-2"
#: The anchor of protocol 2's plan paragraph (the README's brief line links to it).
PLAN_ANCHOR = "protocol-2-plan"


def frontier_markdown(study: DomainStudy) -> pd.DataFrame:
    """The frontier table as a reader sees it: nats per token with 95% intervals."""
    table = study.frontier_table()

    def cell(row, name: str) -> str:
        if row["broke"]:
            return f"none: {row['broke']} of {row['seeds']} runs broke"
        return f"{row[name]:+.4f} [{row[f'{name}_lo']:+.4f}, {row[f'{name}_hi']:+.4f}]".replace(
            "-", "−"
        )

    return pd.DataFrame(
        [
            {
                "arm": row["arm"],
                "lr": f"{row['lr']:g}" + (" (operating)" if row["operating"] else ""),
                "seeds": row["seeds"],
                "trainable": f"{row['trainable']:,}",
                "learned, validation (nats)": cell(row, "learning_val"),
                "learned, evaluation (nats)": cell(row, "learning_eval"),
                "forgot, Wikipedia (nats)": cell(row, "forgetting"),
            }
            for _, row in table.iterrows()
        ]
    ).set_index("arm")


def domain_section(
    study: DomainStudy,
    plan: AnalysisPlan | None = None,
    replicates: int | None = None,
    page: str = "",
    costs: BenchCosts | None = None,
) -> Findings:
    """Protocol 2's section of the findings page, with which method forgets least for the
    same learning, and its decision box for the README (linking into ``page``)."""
    plan = load_plan(protocol="domain") if plan is None else plan
    cells = [study.cells(plan)]
    readings = read_claims([study], plan, replicates, cells)
    robust = robustness([study], plan, min(replicates or 500, 500))
    trainable = {arm: study.runs_of(arm)[0].parameters.get("adapter", 0) for arm in study.arms}
    before = {
        c.key: seed_t_interval(c, cells[0], plan)
        for c in plan.claims
        if all(a in cells[0].rates for a in c.arms())
    }
    peers = forgets_least(study, plan, costs, replicates, readings)
    domain = study.runs[0].spec.domain
    title = f"Protocol 2: continued training on `{domain}`"
    spec = study.runs[0].spec
    design = (
        f"{len(study.runs)} runs: {', '.join(study.arms)}; "
        f"{len(study.seeds)} seed(s); {spec.steps} steps of {spec.batch_size} × "
        f"{spec.block_length} tokens ({spec.training_tokens:,} tokens of training text). "
        "Learning is the domain's held-out NLL drop, forgetting held-out Wikipedia's NLL rise, "
        "both in nats per token (Biderman et al. 2024's protocol)."
    )
    page_text = "\n".join(
        [
            f'<a id="{SECTION}"></a>',
            "",
            f"## {title}",
            "",
            design,
            "",
            decision_box(readings, robust, trainable=trainable),
            "",
            plan_line(plan, cells, PLAN_ANCHOR),
            "",
            "### Its claims",
            "",
            markdown_table(claims_table(readings, before)),
            "",
            "### Robustness",
            "",
            "Each verdict re-read with one seed left out (a verdict that changes is fragile):",
            "",
            markdown_table(robustness_table(readings, robust)),
            "",
            peer_markdown(peers),
            "### Each arm at each rate",
            "",
            "Means over seeds with 95% t-intervals; the operating rate is chosen on validation "
            "(the domain's validation files and held-in Wikipedia):",
            "",
            markdown_table(frontier_markdown(study)),
            "",
            *(claim_section(r, cells[0], plan, replicates) for r in readings),
        ]
    )
    readme = "\n".join(
        [
            f"**{title}** — {design}",
            "",
            decision_box(readings, robust, page, trainable),
            "",
            plan_brief(plan, cells, f"{page}#{PLAN_ANCHOR}"),
            "",
            "**Which method forgets least for the same learning** (pairs the plan names as "
            f"registered, the rest exploratory): {peers.sentence}",
        ]
    )
    return Findings(page_text + "\n", readme + "\n", tuple(readings))
