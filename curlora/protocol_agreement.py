"""The same question under both protocols: the registered claims the paper's plan and protocol
2's plan share (same kind, arms and outcome), each protocol's verdict side by side, and a
sentence that says where the verdicts differ.

"Same question" means the same claim fields; the estimands still differ, since the protocols
measure learning differently (a new head's classification accuracy against next-token NLL on a
domain) and run different seeds and Holm families. So only opposite decided verdicts are a
disagreement; a verdict decided under one protocol alone may be a difference in power.
"""

from __future__ import annotations

import pandas as pd

from curlora.claim_text import level_text, range_text, value_text
from curlora.claims import Reading
from curlora.readings import markdown_table

#: How the two protocols are named on the page.
PROTOCOLS = ("the paper's protocol", "continued training (protocol 2)")


def _question(r: Reading) -> tuple:
    c = r.claim
    return (c.kind, c.arm, c.against, c.outcome, c.threshold)


def shared_claims(paper: list[Reading], domain: list[Reading]) -> list[tuple[Reading, Reading]]:
    """Pairs of readings, one per protocol, that ask the same question."""
    theirs = {_question(r): r for r in domain}
    if len(theirs) != len(domain):
        raise ValueError(
            "Two of protocol 2's claims ask the same question (same kind, arms, outcome and "
            "threshold); a plan's claims must differ for its verdicts to be paired."
        )
    return [(r, theirs[_question(r)]) for r in paper if _question(r) in theirs]


def _verdict_text(r: Reading) -> str:
    if not r.readable:
        return f"not read ({r.reason})"
    c = r.claim
    lo, hi = r.interval(adjusted=True)
    return (
        f"{r.verdict}: {value_text(c.outcome, r.estimate.value)}, "
        f"{range_text(c.outcome, lo, hi)} ({level_text(r.level)}; n = {r.estimate.n})"
    )


def agreement(paper: Reading, domain: Reading) -> str:
    """How the two verdicts relate: 'not read' (a protocol could not read the claim), 'neither
    decided', 'same' (decided alike), 'decided in one only', or 'opposite' (holds under one,
    contradicted under the other)."""
    if not (paper.readable and domain.readable):
        return "not read"
    decided = [v != "undecided" for v in (paper.verdict, domain.verdict)]
    if not any(decided):
        return "neither decided"
    if paper.verdict == domain.verdict:
        return "same"
    if not all(decided):
        return "decided in one only"
    return "**opposite**"


#: The relations in which the protocols disagree, against those in which they do not.
_DIFFER = ("decided in one only", "**opposite**")


def agreement_table(pairs: list[tuple[Reading, Reading]]) -> pd.DataFrame:
    """Each shared question with each protocol's verdict and whether they agree."""
    table = pd.DataFrame(
        [
            {
                "question": paper.claim.statement,
                PROTOCOLS[0]: _verdict_text(paper),
                PROTOCOLS[1]: _verdict_text(domain),
                "agreement": agreement(paper, domain),
            }
            for paper, domain in pairs
        ]
    )
    return table.set_index("question")


def agreement_sentence(pairs: list[tuple[Reading, Reading]]) -> str:
    """Whether the protocols agree, naming every question on which they do not."""
    if not pairs:
        return "The two protocols' plans share no question."
    relation = [agreement(p, d) for p, d in pairs]
    rest = _relations_text(
        [r for r in relation if r not in _DIFFER],
        len(pairs),
        whole=not set(relation) & set(_DIFFER),
    )
    differ = [(p, d, r) for (p, d), r in zip(pairs, relation, strict=True) if r in _DIFFER]
    if not differ:
        return rest
    named = "; ".join(
        f"“{p.claim.statement}” ({PROTOCOLS[0]}: {p.verdict}; {PROTOCOLS[1]}: {d.verdict}; "
        f"{r.strip('*')})"
        for p, d, r in differ
    )
    return (
        f"**The protocols' verdicts differ on {len(differ)} of the {len(pairs)} questions their "
        f"plans share**: {named}. {rest} Each verdict stands for its own protocol: one measures "
        "learning as a new head's accuracy on classification tasks, the other as next-token NLL "
        "on a domain, with their own seeds and Holm families; a verdict decided in one protocol "
        "only may reflect its power, opposite decided verdicts do not."
    )


def _relations_text(relations: list[str], shared: int, whole: bool) -> str:
    """A sentence counting the questions on which the protocols do not differ, by relation."""
    if not relations:
        return ""
    if whole and relations == ["same"] * shared:
        return (
            f"Both protocols give the same decided verdict on each of the {shared} questions "
            "their plans share."
        )
    k = {r: relations.count(r) for r in ("same", "neither decided", "not read")}
    parts = [
        text
        for r, text in (
            ("same", f"both decide {k['same']} alike"),
            ("neither decided", f"neither decides {k['neither decided']}"),
            (
                "not read",
                f"{k['not read']} {'is' if k['not read'] == 1 else 'are'} not read under both yet",
            ),
        )
        if k[r]
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if whole:
        return (
            "No question the plans share is decided differently by the two protocols; of the "
            f"{shared}, {listed}."
        )
    return f"Of the other {len(relations)}, {listed}."


def agreement_markdown(pairs: list[tuple[Reading, Reading]]) -> str:
    """The page's section comparing the two protocols' verdicts on their shared questions."""
    lines = ["## The same questions under both protocols", "", agreement_sentence(pairs), ""]
    if pairs:
        lines += [
            "Each protocol's registered verdict, with its interval at its Holm step's level "
            "(each plan is its own Holm family). The questions match claim by claim; what "
            "learning means differs between the protocols, so the estimates are not one "
            "quantity measured twice:",
            "",
            markdown_table(agreement_table(pairs)),
            "",
        ]
    return "\n".join(lines)
