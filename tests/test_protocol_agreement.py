"""The two protocols' verdicts side by side: questions paired by what they ask, and a
difference named wherever the verdicts differ."""

from __future__ import annotations

from dataclasses import replace

import pytest
from synthetic_runs import domain_study

from curlora.claims import read_claims
from curlora.plan import load_plan
from curlora.protocol_agreement import (
    agreement_markdown,
    agreement_sentence,
    agreement_table,
    shared_claims,
)


@pytest.fixture(scope="module")
def domain_readings():
    return read_claims([domain_study()], load_plan(protocol="domain"), replicates=100)


def as_paper(readings, verdicts: dict[str, str]):
    """The domain readings re-labelled with the paper plan's claims that ask the same question,
    with some verdicts set."""
    paper = {(c.kind, c.arm, c.against, c.outcome, c.threshold): c for c in load_plan().claims}
    out = []
    for r in readings:
        c = r.claim
        twin = paper.get((c.kind, c.arm, c.against, c.outcome, c.threshold))
        if twin is not None:
            out.append(replace(r, claim=twin, verdict=verdicts.get(twin.key, r.verdict)))
    return out


def test_the_plans_share_three_questions(domain_readings):
    pairs = shared_claims(as_paper(domain_readings, {}), domain_readings)
    assert [p.claim.key for p, _ in pairs] == [
        "curlora-keeps",
        "curlora-vs-lora-ppl",
        "curlora-vs-lora-r1-ppl",
    ]
    assert [d.claim.key for _, d in pairs] == [
        "curlora-keeps-domain",
        "curlora-vs-lora-domain",
        "curlora-vs-lora-r1-domain",
    ]
    assert "same decided verdict on each of the 3 questions" in agreement_sentence(pairs)


def test_undecided_or_unread_in_both_is_not_called_agreement(domain_readings):
    unread = replace(
        next(r for r in domain_readings if r.claim.key == "curlora-vs-lora-r1-domain"),
        estimate=None,
        verdict="undecided",
        reason="no runs",
    )
    domain = [
        unread
        if r.claim.key == unread.claim.key
        else replace(r, verdict="undecided")
        if r.claim.key == "curlora-vs-lora-domain"
        else r
        for r in domain_readings
    ]
    paper = as_paper(domain, {"curlora-vs-lora-ppl": "undecided"})
    pairs = shared_claims(paper, domain)
    assert list(agreement_table(pairs)["agreement"]) == ["same", "neither decided", "not read"]
    assert agreement_sentence(pairs) == (
        "No question the plans share is decided differently by the two protocols; of the 3, "
        "both decide 1 alike, neither decides 1 and 1 is not read under both yet."
    )


def test_a_verdict_that_differs_is_named(domain_readings):
    assert (
        next(r for r in domain_readings if r.claim.key == "curlora-vs-lora-domain").verdict
        == "holds"
    )
    paper = as_paper(domain_readings, {"curlora-vs-lora-ppl": "undecided"})
    pairs = shared_claims(paper, domain_readings)
    sentence = agreement_sentence(pairs)
    assert sentence.startswith("**The protocols' verdicts differ on 1 of the 3 questions")
    assert "CURLoRA's perplexity rises less than LoRA's" in sentence
    assert (
        "the paper's protocol: undecided; continued training (protocol 2): holds; decided in one "
        "only" in sentence
    )
    table = agreement_table(pairs)
    assert list(table["agreement"]) == ["same", "decided in one only", "same"]
    opposite = shared_claims(
        as_paper(domain_readings, {"curlora-vs-lora-ppl": "contradicted"}), domain_readings
    )
    assert list(agreement_table(opposite)["agreement"]) == ["same", "**opposite**", "same"]
    assert table.iloc[1, 1].startswith("holds: ")
    assert "## The same questions under both protocols" in agreement_markdown(pairs)


def test_no_shared_question():
    assert agreement_sentence([]) == "The two protocols' plans share no question."
