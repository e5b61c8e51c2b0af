"""The "which method forgets least" table: read from synthetic runs whose forgetting per nat
learned is set, so each verdict is checked against a known truth."""

from __future__ import annotations

import json

import pytest
from synthetic_runs import domain_study

from curlora.arms import Arm
from curlora.claims import read_claims
from curlora.domain_study import DomainStudy
from curlora.peer_table import bench_costs, forgets_least, peer_claims, peer_markdown
from curlora.plan import load_plan

PLAN = load_plan(protocol="domain")
VS_CURLORA = "vs CURLoRA, same learning (Holm interval)"
VS_LORA = "vs LoRA, same learning (Holm interval)"


@pytest.fixture(scope="module")
def peers():
    return forgets_least(domain_study(), PLAN, replicates=200)


def test_every_arm_against_both_references():
    claims = peer_claims(["curlora", "lora", "lora-r1", "full"])
    pairs = {(c.arm, c.against) for c in claims}
    # CURLoRA against LoRA once (as the registered claim reads), not again the other way.
    assert len(claims) == 5 and ("curlora", "lora") in pairs and ("lora", "curlora") not in pairs
    assert all(c.kind == "matched" and c.outcome == "ppl_ratio" for c in claims)


def test_verdicts_follow_the_known_slopes(peers):
    # SLOPES: Wikipedia nats gained per nat learned — CURLoRA 0.1, LoRA 1.0, full 2.0.
    table = peers.table
    assert list(table.index)[0] == "CURLoRA" and list(table.index)[-1] == "full fine-tuning"
    assert table.loc["CURLoRA", VS_LORA].endswith("forgets less")
    assert table.loc["full fine-tuning", VS_LORA].endswith("forgets more")
    assert table.loc["full fine-tuning", VS_CURLORA].endswith("forgets more")
    assert table.loc["CURLoRA", VS_CURLORA] == "—"
    # LoRA's row shows the same comparison from its side: negated, its verdict mirrored.
    assert table.loc["LoRA", VS_CURLORA].endswith("forgets more")
    mine, theirs = (
        table.loc[a, c].split(" (")[0] for a, c in (("CURLoRA", VS_LORA), ("LoRA", VS_CURLORA))
    )
    assert mine.startswith("−") and not theirs.startswith("−")
    assert "Against LoRA — forgets less: CURLoRA" in peers.sentence
    # The plan registers four of these pairs: their cells are its readings, out of the family.
    assert "(4 here, marked)" in peers.caption and "(1 comparison," in peers.caption
    assert "secondary" not in peers.caption  # the domain plan registers no secondary peers
    assert "the registered claim)" in table.loc["CURLoRA", VS_LORA]
    assert "registered" not in table.loc["LoRA r1", VS_LORA]
    assert "at 95%" in table.loc["LoRA r1", VS_LORA]
    assert "train step (ms)" not in table.columns


def _dora_runs() -> list:
    """DoRA at seeds 0-2, learning as synthetic_study's LoRA does and forgetting twice as much
    general knowledge per point learned, and none of the earlier tasks."""
    from synthetic_runs import fake_run

    return [
        fake_run("dora", lr, seed, 0.6 + gain, 0.6 + gain, 1 + 2 * gain * (1 + jitter), gain)
        for seed in (0, 1, 2)
        for jitter in [0.002 * seed]
        for k, lr in enumerate((1e-4, 3e-4, 1e-3, 3e-3))
        for gain in [0.02 * (k + 1) + 2 * jitter]
    ]


def test_the_paper_plans_secondary_peers_are_read_on_both_outcomes():
    from synthetic_runs import synthetic_study

    from curlora.study import Study

    plan = load_plan()  # the paper plan with its amendment: DoRA is a secondary peer
    base = synthetic_study(0.0, 0.05)
    dora = _dora_runs()
    peers = forgets_least(Study([*base.runs, *dora], base_rank=4), plan, replicates=100)
    table = peers.table
    forgetting = "vs LoRA, earlier tasks' forgetting (registered only)"
    assert "registered secondary, not Holm-adjusted" in table.loc["DoRA", VS_LORA]
    assert "pts" in table.loc["DoRA", forgetting]
    assert "registered secondary, not Holm-adjusted" in table.loc["DoRA", forgetting]
    # CURLoRA against LoRA on forgetting is a registered claim: its reading, marked as such.
    assert "the registered claim" in table.loc["CURLoRA", forgetting]
    assert "(secondary, unadjusted)" in peers.sentence
    assert "(2 here, marked)" in peers.caption and "Earlier tasks' forgetting" in peers.caption
    # Each secondary comparison is a family of one: no adjustment, its level the plan's.
    assert {r.claim.outcome for r in peers.readings} == {"ppl_ratio", "forgetting"}
    assert all(r.level == pytest.approx(plan.confidence) for r in peers.readings)
    p = [r.p for r in peers.readings]
    assert [r.p_holm for r in peers.readings] == pytest.approx(p, nan_ok=True)
    assert "(0 comparisons," in peers.caption  # nothing left for the exploratory family
    assert table.loc["DoRA", VS_LORA].endswith("forgets more")


def test_a_peer_at_fewer_seeds_is_read_on_the_seeds_it_shares():
    from synthetic_runs import synthetic_study

    from curlora.study import Study

    # The evidence's layout: the main arms at more seeds than the amendment's peers.
    base = synthetic_study(0.0, 0.05, seeds=(0, 1, 2, 3, 4, 5))
    dora = _dora_runs()
    study, plan = Study([*base.runs, *dora], base_rank=4), load_plan()
    registered = read_claims([study], plan, 100)
    peers = forgets_least(study, plan, replicates=100, registered=registered)
    n = {(r.claim.arm, r.claim.against): r.estimate.n for r in peers.readings if r.readable}
    # Each comparison pairs the seeds both arms ran: DoRA's three against the references, all
    # six in the plan's own claims, which the peers' fewer seeds must not cut.
    assert n[("dora", "lora")] == n[("dora", "curlora")] == 3
    assert {r.estimate.n for r in registered if r.readable} == {6}
    assert peers.table.loc["DoRA", VS_LORA].endswith("forgets more")


def test_costs_shown_only_for_the_model_and_rank_they_timed(tmp_path):
    rows = [
        {"method": m, "median_s": s, "peak_mb": mb, "model": "smollm2-135m", "rank": 16}
        for m, s, mb in (("curlora", 1.5, 800.0), ("lora", 1.6, 900.0), ("full", 2.5, 2000.0))
    ]
    ceiling = [{"method": "float32", "gflops": 74.2}]
    path = tmp_path / "PEERS.json"
    path.write_text(
        json.dumps(
            {
                "groups": {
                    "train step, smollm2-135m q/k/v r16, batch 8×64: the peers": rows,
                    "matrix product 2048×2048 (this machine's arithmetic ceiling)": ceiling,
                }
            }
        )
    )
    costs = bench_costs(path)
    assert costs.costs["full"].step_ms == 2500 and costs.fp32_gflops == 74.2
    study = domain_study()
    table = forgets_least(study, PLAN, costs, replicates=50).table
    assert table.loc["CURLoRA", "train step (ms)"] == "1500"
    assert table.loc["LoRA r1", "peak memory (MiB)"] == "not benchmarked"
    other = rows[0] | {"rank": 8}
    path.write_text(json.dumps({"groups": {"x: the peers": [other]}}))
    elsewhere = forgets_least(study, PLAN, bench_costs(path), replicates=50)
    assert "train step (ms)" not in elsewhere.table.columns
    assert "another model or rank" in elsewhere.caption
    assert bench_costs(tmp_path / "absent.json") is None


def test_a_study_with_nothing_to_compare_says_so():
    runs = domain_study().runs
    for kept in (("full",), ("curlora",), ("full", "lora-r1")):
        alone = DomainStudy([r for r in runs if Arm.of_spec(r.spec, 16).name in kept], 16)
        peers = forgets_least(alone, PLAN, replicates=20)
        assert peers.sentence.startswith("Nothing to compare") and not peers.readings
        assert len(peers.table) == len(kept)


def test_markdown_section(peers):
    text = peer_markdown(peers)
    assert text.startswith("### Which method forgets least for the same learning")
    assert "| full fine-tuning |" in text


def test_the_findings_page_carries_the_table():
    from synthetic_runs import synthetic_study

    from curlora.findings import findings

    found = findings(synthetic_study(0.0, 0.1), replicates=100)
    assert "## Which method forgets least for the same learning" in found.page
    assert "**Which method forgets least for the same learning** (pairs the plan" in found.readme
    assert {r.claim.key for r in found.readings} == {c.key for c in load_plan().claims}
