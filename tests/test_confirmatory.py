"""The confirmatory study's batches are the registered plan's design, run for run."""

from __future__ import annotations

from curlora.arms import Arm
from curlora.domain_study import domain_specs
from curlora.experiment import confirmatory
from curlora.experiment.design import study_design, task_orders
from curlora.experiment.profiles import (
    DOMAIN_PARAMETERS,
    registered_ablation,
    registered_comparison,
    registered_domain,
)
from curlora.plan import load_plan, plan_path


def test_the_batches_are_the_plans_design(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan()
    assert plan.status == "registered"
    domain_plan = load_plan(protocol="domain")
    assert domain_plan.status == "registered"
    found = confirmatory.batches(plan, domain_plan)
    assert list(found) == [
        "paper-0-4",
        "paper-5-9",
        "reverse",
        "ablation",
        "peers",
        "peers-reverse",
        "domain",
    ]
    d, rates = plan.design, plan.rates()
    tasks = tuple(d["tasks"])
    for name, specs in found.items():
        if name == "domain":
            continue
        assert {s.train_size for s in specs} == {600} and {s.autocast for s in specs} == {None}
        orders = {s.tasks for s in specs}
        assert orders == ({tasks[::-1]} if "reverse" in name else {tasks})
        for spec in specs:
            arm = Arm.of_spec(spec, d["rank"]).name
            assert spec.lr in rates[arm], (name, arm, spec.lr)
    seeds = {name: sorted({s.seed for s in found[name]}) for name in found}
    assert seeds["paper-0-4"] + seeds["paper-5-9"] == d["paper_order_seeds"]
    assert seeds["reverse"] == d["reverse_order_seeds"] == seeds["ablation"]
    assert seeds["peers"] == seeds["peers-reverse"] == d["secondary"]["seeds"]
    # Nothing is computed yet in an empty results folder; listing costs nothing.
    assert len(confirmatory.missing(found["reverse"])) == len(found["reverse"])
    assert confirmatory.main([]) == 0
    assert "paper-0-4" in capsys.readouterr().out


def test_the_peers_batches_run_the_amendments_arms_beside_the_main_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan()
    found = confirmatory.batches(plan)
    d = plan.design
    for name, main in (("peers", "paper-0-4"), ("peers-reverse", "reverse")):
        arms = {Arm.of_spec(s, d["rank"]).name for s in found[name]}
        assert arms == {*d["main_arms"], *plan.secondary_arms()}
        # The main arms' runs at the peers' seeds are the main batches' own: computed once.
        shared = {s.key() for s in found[name] if Arm.of_spec(s, d["rank"]).name in d["main_arms"]}
        assert shared == {s.key() for s in found[main] if s.seed in d["secondary"]["seeds"]}
    # Without an amendment registering their rates, the plan's peers have no batch.
    alone = tmp_path / "analysis_plan.toml"
    alone.write_bytes(plan_path().read_bytes())
    bare = load_plan(alone)
    assert bare.amendments == () and bare.secondary_arms() == []
    assert "peers" not in confirmatory.batches(bare)


def test_the_domain_batch_is_protocol_2s_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan(protocol="domain")
    d = plan.design
    specs = confirmatory.batches(domain_plan=plan)["domain"]
    assert len(specs) == sum(len(r) for r in d["rates"].values()) * len(d["seeds"])
    for spec in specs:
        assert spec.lr in d["rates"][Arm.of_spec(spec, d["rank"]).name]
        assert all(getattr(spec, k) == v for k, v in d["run"].items())
        assert (spec.model, spec.domain, spec.autocast) == (d["model"], d["domain"], None)
    assert {s.seed for s in specs} == set(d["seeds"])
    assert len(confirmatory.missing(specs)) == len(specs)


def test_the_reverse_order_alone():
    assert task_orders(("a", "b", "c"), "reverse") == [("c", "b", "a")]


def test_notebook_04s_reading_of_the_plan_is_the_batches_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan()
    d = plan.design
    found = confirmatory.batches(plan)
    paper, peer_seeds = d["paper_order_seeds"], d["secondary"]["seeds"]
    # The main comparison at every paper-order seed, the peers at theirs: exactly the runs of
    # the two paper batches and the peers batch, nothing the batches do not compute.
    reading = study_design(**registered_comparison(paper, peer_seeds)).specs()
    computed = [*found["paper-0-4"], *found["paper-5-9"], *found["peers"]]
    assert {s.key() for s in reading} == {s.key() for s in computed}
    assert {
        s.seed for s in reading if Arm.of_spec(s, d["rank"]).name in plan.secondary_arms()
    } == set(peer_seeds)
    # Without peer seeds it reads the main arms alone.
    alone = study_design(**registered_comparison(paper)).specs()
    assert {Arm.of_spec(s, d["rank"]).name for s in alone} == set(d["main_arms"])


def test_notebook_05s_reading_of_the_plan_is_the_ablation_batchs_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan()
    reading = study_design(**registered_ablation(plan.design["ablation_seeds"])).specs()
    computed = confirmatory.batches(plan)["ablation"]
    assert {s.key() for s in reading} == {s.key() for s in computed}
    assert {Arm.of_spec(s, plan.design["rank"]).name for s in reading} == set(
        plan.design["ablation_arms"]
    )


def test_notebook_06s_reading_of_the_plan_is_the_domain_batchs_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    plan = load_plan(protocol="domain")
    reading = domain_specs(**registered_domain(plan.design["seeds"]))
    computed = confirmatory.batches(domain_plan=plan)["domain"]
    assert {s.key() for s in reading} == {s.key() for s in computed}
    assert set(registered_domain([0])) == set(DOMAIN_PARAMETERS)
