"""A registered plan is amended by new files beside it that may only add to its design."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from curlora.plan import amendment_paths, load_plan, plan_path


def _plan_with(folder: Path, *amendments: str) -> Path:
    """The registered paper plan copied into ``folder`` with ``amendments`` (their bodies,
    numbered 1, 2, … in order) beside it, each naming the copied plan's hash."""
    plan = folder / "analysis_plan.toml"
    plan.write_bytes(plan_path().read_bytes())
    sha = hashlib.sha256(plan.read_bytes()).hexdigest()
    before = None
    for number, body in enumerate(amendments, 1):
        head = (
            f'[amendment]\namends = "analysis_plan.toml"\namends_sha256 = "{sha}"\n'
            f'registered = "2026-12-0{number}"\nreason = "test {number}"\n'
        )
        if before is not None:
            head += f'follows_sha256 = "{before}"\n'
        path = folder / f"analysis_plan.amendment-{number}.toml"
        path.write_text(head + body)
        before = hashlib.sha256(path.read_bytes()).hexdigest()
    return plan


#: The plan's five secondary peers.
PEERS = ("dora", "pissa", "milora", "middle", "osf")
#: Amendment bodies: the peers' seeds and orders; their rates; both.
SEEDS = '[design.secondary]\nseeds = [0, 1]\norders = ["paper"]\n'
RATES = "[design.secondary.rates]\n" + "".join(f"{arm} = [1e-4]\n" for arm in PEERS)
WHOLE = SEEDS + RATES


def test_the_shipped_amendment_registers_the_peers_rates():
    plan = load_plan()
    (amendment,) = plan.amendments
    shipped = plan_path().with_name("analysis_plan.amendment-1.toml")
    assert amendment.sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert amendment.file == "curlora/resources/analysis_plan.amendment-1.toml"
    # The plan's own hash is the registered file's: amending never rewrites it.
    assert plan.sha256 == hashlib.sha256(plan_path().read_bytes()).hexdigest()
    secondary = plan.design["secondary"]
    assert plan.secondary_arms() == [*secondary["peers"], *secondary["exploratory"]]
    assert all(len(plan.rates()[arm]) >= 3 for arm in plan.secondary_arms())
    # The registered design's own rates come through unchanged.
    assert plan.rates()["curlora"] == [3e-4, 1e-3, 3e-3, 1e-2]


def test_amendments_add_in_order(tmp_path):
    plan = load_plan(_plan_with(tmp_path, SEEDS, RATES))
    assert [a.reason for a in plan.amendments] == ["test 1", "test 2"]
    assert plan.rates()["dora"] == [1e-4] and plan.design["secondary"]["seeds"] == [0, 1]
    assert plan.secondary_arms() == list(PEERS)
    # The plan's own registration is untouched.
    assert plan.rates()["curlora"] == load_plan().rates()["curlora"]


def test_amendments_are_taken_in_numeric_order(tmp_path):
    plan = _plan_with(tmp_path)
    for n in range(1, 11):
        (tmp_path / f"analysis_plan.amendment-{n}.toml").write_text("")
    numbers = [int(p.stem.rsplit("-", 1)[1]) for p in amendment_paths(plan)]
    assert numbers == list(range(1, 11))  # 10 after 9, not after 1
    (tmp_path / "analysis_plan.amendment-peers.toml").write_text("")
    with pytest.raises(ValueError, match="amendment-1.toml, -2"):
        amendment_paths(plan)


@pytest.mark.parametrize("numbers", [(1, 3), (1, "01")])
def test_a_missing_or_doubled_amendment_number_is_refused(tmp_path, numbers):
    plan = _plan_with(tmp_path)
    for n in numbers:
        (tmp_path / f"analysis_plan.amendment-{n}.toml").write_text("")
    with pytest.raises(ValueError, match="none missing|not a numbered amendment"):
        amendment_paths(plan)


def test_an_amendment_changed_after_a_later_one_is_refused(tmp_path):
    plan = _plan_with(tmp_path, SEEDS, RATES)
    assert len(load_plan(plan).amendments) == 2
    first = tmp_path / "analysis_plan.amendment-1.toml"
    first.write_text(first.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    with pytest.raises(ValueError, match="must not change once a later one is registered"):
        load_plan(plan)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (RATES, "lacks design.secondary.seeds"),
        (SEEDS + "[design.secondary.rates]\ndora = [1e-4]\n", "pissa has no rates"),
        (WHOLE + "curlora = [1.0]\n", "names curlora, which is not a secondary peer"),
        (
            WHOLE.replace("[design.secondary]\n", '[design.secondary]\nexploratory = ["lora"]\n')
            + "lora = [1.0]\n",
            "lora is a registered arm",
        ),
        (WHOLE.replace('["paper"]', '["sideways"]'), "order 'sideways'"),
    ],
)
def test_secondary_arms_registered_by_halves_are_refused(tmp_path, body, problem):
    with pytest.raises(ValueError, match=problem):
        load_plan(_plan_with(tmp_path, body))


def test_an_amendment_cannot_change_what_the_plan_registered(tmp_path):
    changed = "[design]\npaper_order_seeds = [0, 1, 2]\n"
    with pytest.raises(ValueError, match="paper_order_seeds.*never change it"):
        load_plan(_plan_with(tmp_path, changed))


def test_an_amendment_cannot_touch_claims_or_analysis(tmp_path):
    loosened = "[analysis]\nfamilywise_alpha = 0.1\n"
    with pytest.raises(ValueError, match=r"\['analysis'\].*only add to the plan's \[design\]"):
        load_plan(_plan_with(tmp_path, loosened))


def test_a_plan_changed_after_its_amendment_is_refused(tmp_path):
    plan = _plan_with(tmp_path, WHOLE)
    plan.write_text(plan.read_text().replace("familywise_alpha = 0.05", "familywise_alpha = 0.1"))
    with pytest.raises(ValueError, match="must not change after it is amended"):
        load_plan(plan)
    # An amendment beside another plan (a copy renamed) is refused the same way.
    other = tmp_path / "other"
    other.mkdir()
    (other / "analysis_plan.toml").write_bytes(plan_path().read_bytes())
    (other / "analysis_plan.amendment-1.toml").write_text(
        (tmp_path / "analysis_plan.amendment-1.toml")
        .read_text()
        .replace('amends = "analysis_plan.toml"', 'amends = "analysis_plan_domain.toml"')
    )
    with pytest.raises(ValueError, match="amends analysis_plan_domain.toml"):
        load_plan(other / "analysis_plan.toml")


def test_an_amendment_without_its_reason_is_refused(tmp_path):
    plan = _plan_with(tmp_path)
    (tmp_path / "analysis_plan.amendment-1.toml").write_text(
        '[amendment]\namends = "analysis_plan.toml"\n'
    )
    with pytest.raises(ValueError, match="lacks amends_sha256, registered, reason"):
        load_plan(plan)
