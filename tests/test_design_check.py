"""A study's runs against its plan's design: every difference and every missing run is named."""

from __future__ import annotations

import dataclasses
import math

import pytest
from synthetic_runs import fake_run, synthetic_study

from curlora.design_check import DesignCheck, paper_check, seed_text
from curlora.experiment.presets import PRESETS
from curlora.plan import load_plan
from curlora.study import Study

RATES = {"curlora": [1e-3, 3e-3, 1e-2, 3e-2], "lora": [1e-4, 3e-4, 1e-3, 3e-3], "head-only": [1e-2]}


def _plan(**design):
    """The registered plan with a design the synthetic runs (smoke preset, tasks a → b → c,
    rank 4) can meet; reverse and ablation seeds differ, so choosing the wrong one shows."""
    spec = synthetic_study(0.0, 0.0).runs[0].spec
    base = {
        **load_plan().design,
        "preset": "smoke",
        "model": spec.model,
        "tasks": ["a", "b", "c"],
        "rank": 4,
        "main_arms": ["curlora", "lora", "head-only"],
        "ablation_arms": ["curlora", "curlora-norm", "head-only"],
        "paper_order_seeds": [0, 1, 2],
        "reverse_order_seeds": [0, 1],
        "ablation_seeds": [0, 1, 2, 3],
        "rates": {**RATES, "curlora-norm": [1e-3]},
    }
    return dataclasses.replace(load_plan(), design={**base, **design})


def _eval_400() -> str:
    return f"400 evaluation examples per task (the plan's: {PRESETS['smoke'].eval_size})"


def test_runs_on_the_design_differ_only_where_they_do():
    # synthetic_study: every arm at RATES, seeds 0–2, eval_size 400 (the smoke preset's is 16).
    check = paper_check(synthetic_study(0.0, 0.0), _plan())
    assert check == DesignCheck(checked=True, differs=(_eval_400(),))
    assert not check.interim
    # A plan without a design checks nothing (and the page says so).
    unchecked = dataclasses.replace(load_plan(), design={})
    assert paper_check(synthetic_study(0.0, 0.0), unchecked) == DesignCheck()


def test_missing_arms_cells_and_seeds_make_an_interim_look():
    study = synthetic_study(0.0, 0.0)
    plan = _plan(paper_order_seeds=[0, 1, 2, 3, 4])
    # Every cell lacks seeds 3–4: one phrase.
    check = paper_check(study, plan)
    assert "not at seeds 3, 4 of the plan's 0–4" in check.missing
    # One cell lacks a seed the others have; an arm has no runs at all.
    runs = [
        r
        for r in study.runs
        if not (r.spec.method == "lora" and math.isclose(r.spec.lr, 3e-4) and r.spec.seed == 2)
    ]
    plan = _plan(
        main_arms=["curlora", "lora", "lora-r1", "head-only"], rates={**RATES, "lora-r1": [1e-2]}
    )
    check = paper_check(Study(runs, base_rank=4), plan)
    assert "LoRA at 0.0003: not at seeds 2" in check.missing
    assert "no LoRA r1 runs" in check.missing
    # Missing runs alone make an interim look; a setting off the design does not.
    assert not check.interim and dataclasses.replace(check, differs=()).interim


def test_every_run_setting_is_checked_not_the_first_runs():
    study = synthetic_study(0.0, 0.0)
    runs = list(study.runs)
    # A rank-1 LoRA run first: its rank is its arm's, not a difference; a head-only run with
    # another training size is named with its arm.
    first = fake_run("lora", 1e-3, 0, 0.6, 0.6, 1.0, 0.0, rank=1)
    odd = fake_run("head-only", 0.01, 0, 0.6, 0.6, 1.0, 0.0)
    odd = dataclasses.replace(odd, spec=odd.spec.replace(train_size=999))
    runs = [
        first,
        *[r for r in runs if not (r.spec.method == "head-only" and r.spec.seed == 0)],
        odd,
    ]
    plan = _plan(
        main_arms=["curlora", "lora", "lora-r1", "head-only"], rates={**RATES, "lora-r1": [1e-3]}
    )
    check = paper_check(Study(runs, base_rank=4), plan)
    assert not any(text.startswith("rank") for text in check.differs)
    trained = (
        f"999 training examples per task (the plan's: {PRESETS['smoke'].train_size}) (head-only)"
    )
    assert trained in check.differs
    # Rates computed rather than typed are the same rates.
    close = _plan(rates={**RATES, "lora": [x * (1 + 1e-12) for x in RATES["lora"]]})
    assert not any("LoRA at rates" in t for t in paper_check(study, close).differs)


def test_task_orders_are_named_against_the_headline():
    study = synthetic_study(0.0, 0.0)
    plan = _plan()

    def order(tasks, method="lora"):
        return [fake_run(method, 1e-3, s, 0.6, 0.6, 1.0, 0.0, tasks=tasks) for s in (0, 1)]

    reverse = paper_check(Study(order(("c", "b", "a")), base_rank=4), plan)
    assert any("c → b → a alone: the plan reads it only to re-check" in t for t in reverse.differs)
    # The reverse design's own seeds (0–1) are expected, not the headline's (0–2).
    assert not any("seeds" in t for t in reverse.missing)
    other = paper_check(Study(order(("b", "a", "c")), base_rank=4), plan)
    assert "task order b → a → c (the plan's: a → b → c)" in other.differs
    both = paper_check(Study([*study.runs, *order(("c", "b", "a"))], base_rank=4), plan)
    assert any(t.startswith("2 task orders, averaged within each seed") for t in both.differs)
    tasks = paper_check(Study(order(("a", "x")), base_rank=4), plan)
    assert "tasks a, x (the plan's: a, b, c)" in tasks.differs


def test_the_ablation_is_held_to_its_own_seeds_and_arms():
    plan = _plan()
    runs = [
        fake_run(m, lr, s, 0.6, 0.6, 1.0, 0.0, sampling=sampling)
        for m, sampling, lr in (
            ("curlora", "inverse", 1e-3),
            ("curlora", "norm", 1e-3),
            ("head-only", "inverse", 1e-2),
        )
        for s in (0, 1, 2, 3)
    ]
    ablation = paper_check(Study(runs, base_rank=4), plan)
    # Seeds 0–3 are the ablation's: none missing; LoRA is not expected of it.
    assert not any("seed" in t for t in ablation.missing)
    assert "no LoRA runs" not in ablation.missing
    assert "CURLoRA at rates 0.001 (the plan's: 0.001, 0.003, 0.01, 0.03)" in ablation.missing
    # An arm the plan does not name is read beside it.
    svd = Study([*runs, fake_run("svd", 1e-3, 0, 0.6, 0.6, 1.0, 0.0)], base_rank=4)
    assert paper_check(svd, plan).outside == ("the SVD peer (not in the plan)",)


def test_seeds_read_as_ranges():
    assert seed_text([4, 0, 1, 2, 3]) == "0–4"
    assert seed_text([0, 2]) == "0, 2" and seed_text([1, 2]) == "1, 2"


def test_the_peers_are_held_to_the_amendments_grid_and_seeds():
    secondary = {
        "peers": ["dora"],
        "exploratory": ["full"],
        "seeds": [0, 1],
        "orders": ["paper"],
        "rates": {"dora": [1e-4, 1e-3], "full": [1e-5]},
    }
    plan = _plan(secondary=secondary)
    main = synthetic_study(0.0, 0.0).runs  # the main arms at the headline's seeds, 0–2
    peers = [
        fake_run(m, lr, s, 0.6, 0.6, 1.0, 0.0)
        for m, lr in (("dora", 1e-4), ("dora", 1e-3), ("full", 1e-5))
        for s in (0, 1)
    ]
    check = paper_check(Study([*main, *peers], base_rank=4), plan)
    assert check.differs == (_eval_400(),) and not check.missing and not check.outside
    # Peers beside the main arms at the peers' seeds only: the headline claims would read
    # fewer seeds than the plan registers, so it is an interim look, never the design.
    batch = [r for r in main if r.spec.seed in (0, 1)]
    interim = paper_check(Study([*batch, *peers], base_rank=4), plan)
    assert any(t.endswith("not at seeds 2") for t in interim.missing)
    assert not any("DoRA" in t or "full" in t for t in interim.missing)
    short = [r for r in peers if not (r.spec.method == "dora" and r.spec.lr == 1e-3)]
    gap = paper_check(Study([*main, *short], base_rank=4), plan)
    assert "DoRA at rates 0.0001 (the plan's: 0.0001, 0.001)" in gap.missing
    # Before an amendment registers their rates, the peers are read beside the plan.
    unregistered = _plan(secondary={"peers": ["dora"]})
    outside = paper_check(Study([*main, *peers], base_rank=4), unregistered)
    assert outside.outside == ("DoRA and full fine-tuning (not in the plan)",)


def test_arms_may_run_at_their_own_seeds():
    from curlora.experiment.design import study_design
    from curlora.tables import design_text

    design = study_design(
        "smoke",
        arms=["curlora", "dora", "head-only"],
        lrs={"*": [1e-3, 1e-2]},
        seeds=[0, 1, 2],
        arm_seeds={"dora": [0, 1]},
    )
    seeds = {}
    for spec in design.specs():
        seeds.setdefault(spec.method, set()).add(spec.seed)
    assert seeds == {"curlora": {0, 1, 2}, "dora": {0, 1}, "head-only": {0, 1, 2}}
    assert len(design.specs()) == 2 * 3 + 2 * 2 + 3 and design.all_seeds() == (0, 1, 2)
    assert "Seeds: 0, 1, 2 (DoRA: 0, 1)." in design_text(design, [])
    with pytest.raises(ValueError, match=r"arm_seeds names \['lora'\]"):
        study_design("smoke", arms=["curlora"], lrs={"*": [1e-3]}, arm_seeds={"lora": [0]})
