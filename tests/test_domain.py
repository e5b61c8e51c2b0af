"""Protocol 2, continued training on a domain: the split by file, the spec, a run, the study."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_runs import SLOPES
from synthetic_runs import domain_run as _synthetic
from synthetic_runs import domain_study as _study

from curlora import explorers, narration, plots
from curlora.bootstrap import identity
from curlora.claim_text import claim_sentence
from curlora.claims import read_claims, robustness
from curlora.data.domains import load_domain, python_stdlib
from curlora.design_check import DesignCheck
from curlora.domain_findings import domain_section
from curlora.domain_study import DomainStudy, domain_design, domain_specs
from curlora.experiment.cost import estimate_seconds
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_run import run_domain
from curlora.experiment.domain_spec import MEASURES, DomainSpec
from curlora.experiment.sweep import cached, run_many
from curlora.matching import NO_RATE, Means
from curlora.peer_table import forgets_least
from curlora.plan import load_plan
from curlora.plots.lint import figure_problems

#: A tiny run: a few blocks of a few tokens, a handful of windows.
TINY = dict(
    model="tiny-llama",
    rank=4,
    steps=6,
    batch_size=2,
    block_length=32,
    target_windows=4,
    target_length=64,
    general_val_windows=2,
    ppl_windows=4,
    ppl_max_length=64,
)


def _folder(tmp_path, files: int = 60):
    root = tmp_path / "domain"
    (root / "sub").mkdir(parents=True)
    for k in range(files):
        where = root / "sub" if k % 3 else root
        (where / f"file{k}.txt").write_text(f"def f{k}(x):\n    return x * {k}\n" * 40)
    return root


def test_a_domain_splits_by_file_and_every_file_lands_in_one_split(tmp_path):
    domain = load_domain(str(_folder(tmp_path)))
    splits = {s: {p for p, _ in domain.split_files(s)} for s in ("train", "val", "eval")}
    assert not (splits["train"] & splits["val"] or splits["val"] & splits["eval"])
    assert not splits["train"] & splits["eval"]
    assert set().union(*splits.values()) == {p for p, _ in domain.files()}
    assert len(splits["train"]) > len(splits["val"]) > 0 and splits["eval"]
    # A file's split is fixed by its path: new content does not move it (but is seen).
    before = domain.fingerprint()
    (tmp_path / "domain" / "file0.txt").write_text("print('changed')\n" * 40)
    again = load_domain(str(tmp_path / "domain"))
    assert {p for p, _ in again.split_files("eval")} == splits["eval"]
    assert again.fingerprint() != before
    # Held-out text is whole files.
    held = domain.heldout_text("eval")
    assert all(text in held for _, text in domain.split_files("eval"))
    with pytest.raises(ValueError, match="read per seed"):
        domain.heldout_text("train")


def test_training_blocks_are_seeded_and_never_run_short(tmp_path):
    from curlora.models import load_model

    _, tok = load_model("tiny-llama")
    domain = load_domain(str(_folder(tmp_path)))
    a, b = domain.train_blocks(tok, 4, 16, seed=0), domain.train_blocks(tok, 4, 16, seed=0)
    assert a.shape == (4, 16) and torch_equal(a, b)
    assert not torch_equal(a, domain.train_blocks(tok, 4, 16, seed=1))
    with pytest.raises(ValueError, match="training tokens"):
        domain.train_blocks(tok, 10_000, 512, seed=0)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_bad_domains_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="folder of UTF-8 text files"):
        load_domain("no-such-domain")
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="a few dozen"):
        load_domain(str(small)).split_files("val")


def test_the_standard_library_domain_is_real_code():
    domain = python_stdlib()
    files = domain.files()
    assert len(files) > 200
    assert not any(p.startswith(("test/", "idlelib/", "encodings/")) for p, _ in files)
    assert all(p.endswith(".py") for p, _ in files)
    assert "python" in domain.fingerprint()
    summary = domain.summary()
    assert summary["files"].sum() == len(files)


def test_a_domain_spec_checks_its_fields_and_keys_on_content(tmp_path):
    with pytest.raises(ValueError, match="no head to train"):
        DomainSpec(method="head-only")
    with pytest.raises(ValueError, match="steps must be an int"):
        DomainSpec(steps=0)
    spec = DomainSpec(domain=str(_folder(tmp_path)), model="tiny-llama")
    key = spec.key()
    assert spec.replace(seed=1).group_key() == spec.group_key() != spec.replace(lr=1).group_key()
    (tmp_path / "domain" / "file1.txt").write_text("x = 1\n" * 50)
    assert spec.key() != key
    assert spec.label() == "domain-curlora-r16-lr0.001-s0"
    assert spec.training_tokens == spec.steps * spec.batch_size * spec.block_length


def test_a_continued_training_run_learns_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    spec = DomainSpec(method="full", lr=1e-2, **TINY)
    first = run_domain(spec, progress=False)
    assert len(first.loss) == spec.steps and first.parameters["adapter"] > 0
    assert np.mean(first.loss[-2:]) < first.loss[0]
    assert first.learning("val") > 0 and first.learning("eval") > 0
    for m in MEASURES:
        delta, tokens = first.windows(m)
        assert delta.shape == tokens.shape and (tokens > 0).all()
    # The second call reads the cache; the record survives its file format.
    again = run_domain(spec, progress=False)
    assert again.nll == first.nll and again.timings == first.timings
    assert cached(spec).summary() == first.summary()
    assert DomainResults.from_payload(first.to_payload()).loss == first.loss
    # A sweep mixes it with nothing else and reads it from the cache.
    (loaded,) = run_many([spec], executor="serial", progress=False)
    assert loaded.nll == first.nll
    # CURLoRA starts at ΔW = 0: its "before" is the untouched model's, shared with this run's.
    other = run_domain(spec.replace(method="curlora", lr=1e-3, steps=1), progress=False)
    assert other.nll["general-eval"]["before"] == first.nll["general-eval"]["before"]
    assert len(list((tmp_path / "domain-initial").glob("*.json"))) == 1
    # Windows drawn another way are another "before": a stored one is never paired with them.
    monkeypatch.setattr("curlora.perplexity.WINDOW_SEED", 1)
    moved = run_domain(spec.replace(method="curlora", lr=1e-3, steps=1, seed=1), progress=False)
    assert len(list((tmp_path / "domain-initial").glob("*.json"))) == 2
    assert moved.nll["general-eval"]["before"] != first.nll["general-eval"]["before"]


def test_cost_is_estimated_for_continued_training():
    rates = {"float32": 100.0, "bfloat16": 1.0}
    short = estimate_seconds([DomainSpec(steps=8)], rates)
    long = estimate_seconds([DomainSpec(steps=32)], rates)
    assert 0 < short < long


# ------------------------------------------------------------------ the study, synthetic runs


def test_the_registered_claims_read_a_continued_training_study():
    plan = load_plan(protocol="domain")
    study = _study()
    assert study.arms == list(SLOPES) and study.seeds == [0, 1, 2, 3, 4]
    readings = {r.claim.key: r for r in read_claims([study], plan, replicates=300)}
    # CURLoRA forgets a tenth of LoRA's per nat learned: it holds; LoRA forgets half of full
    # fine-tuning's (Biderman et al.'s finding, built in here): it holds too.
    assert readings["curlora-vs-lora-domain"].verdict == "holds"
    assert readings["lora-vs-full-domain"].verdict == "holds"
    assert readings["curlora-vs-lora-domain"].estimate.value < 0
    # At matched learning the difference is the slopes' difference times the learning there.
    matched = readings["curlora-vs-full-domain"].estimate.value
    assert -(2.0 - 0.1) * 0.12 < matched < -(2.0 - 0.1) * 0.02
    # The sentence keeps the sign with the quantity it names: no "rises by −x% less".
    sentence = claim_sentence(readings["curlora-vs-lora-domain"])
    assert sentence.startswith("**Prefer CURLoRA to LoRA to keep perplexity**: for the same ")
    assert "CURLoRA's perplexity change against LoRA's is −" in sentence and " less" not in sentence
    robust = robustness([study], plan, replicates=100)
    assert len(robust.verdicts["curlora-vs-lora-domain"]) == 5
    table = study.frontier_table()
    assert table.groupby("arm")["operating"].sum().eq(1).all()
    assert (table["forgetting"] > 0).all()


def test_each_split_feeds_only_its_part_of_the_reading():
    """x and selection come from validation, the outcome from held-out Wikipedia: moving one
    split's NLL moves only what it feeds, so a swapped split cannot pass unseen."""
    plan = load_plan(protocol="domain")
    base = _study().cells(plan)

    def moved(measure: str):
        runs = _study().runs
        for r in runs:
            after = np.asarray(r.nll[measure]["after"], dtype=float)
            after[:, 0] += 0.3 * after[:, 1]  # 0.3 nats per token more after training
            r.nll[measure]["after"] = after.tolist()
        return DomainStudy(runs, base_rank=16).cells(plan)

    parts = {"x": lambda c: c.x["nll"], "score": lambda c: c.score, "outcome": lambda c: c.windows}
    feeds = {
        "target-val": {"x", "score"},
        "general-val": {"score"},
        "target-eval": set(),
        "general-eval": {"outcome"},
    }
    for measure, fed in feeds.items():
        cells = moved(measure)
        for name, part in parts.items():
            a, b = part(base), part(cells)
            same = all(np.allclose(a[c], b[c], equal_nan=True) for c in a)
            assert same == (name not in fed), f"{measure} {'left' if same else 'moved'} {name}"


def test_a_broken_run_keeps_its_seed_and_its_rate_is_never_chosen():
    plan = load_plan(protocol="domain")
    chosen = _study().operating_rate()["curlora"]
    for lr in _study().rates("curlora"):
        study = _study()
        broken = next(r for r in study.runs_of("curlora", lr) if r.spec.seed == 0)
        # A run that broke: its weights went non-finite, so every NLL after training is NaN.
        for pair in broken.nll.values():
            pair["after"] = [[np.nan, tokens] for _, tokens in pair["after"]]
        assert broken.broke and not _study().runs[0].broke
        study = DomainStudy(study.runs, base_rank=16)
        # The rate the run broke at is never chosen; any other keeps the choice it had. The
        # claims keep every seed (dropping seed 0 would hide the arm that diverged on it), and
        # their point estimate reads the same rate as the study's tables.
        expected = chosen if lr != chosen else None
        picked = study.operating_rate(plan)["curlora"]
        assert picked != lr and (expected is None or picked == expected), f"broken at {lr:g}"
        keeps = next(
            r for r in read_claims([study], plan, replicates=20) if r.claim.arm == "curlora"
        )
        assert keeps.estimate.n == len(study.seeds)
        cells = study.cells(plan)
        point = Means(cells, identity(len(cells.seeds), len(cells.tokens)))
        assert np.isnan(point.outcome("ppl_ratio", "curlora", lr)[0])
        assert np.isfinite(point.outcome("ppl_ratio", "curlora", picked)[0])


def test_an_arm_that_broke_at_every_rate_has_no_operating_rate_and_says_so():
    study = _study(range(3))
    for lr in study.rates("curlora"):
        broken = next(r for r in study.runs_of("curlora", lr) if r.spec.seed == lr_seed(lr))
        broken.loss = [1.0, float("nan")]
    study = DomainStudy(study.runs, base_rank=16)
    plan = load_plan(protocol="domain")
    cells = study.cells(plan)
    point = Means(cells, identity(len(cells.seeds), len(cells.tokens)))
    # Before, argmax over nothing but -inf named the lowest rate as if it had been chosen.
    assert point.operating_rate("curlora")[0] == NO_RATE
    assert np.isnan(point.at_operating_rate("ppl_ratio", "curlora")[0])
    assert "curlora" not in study.operating_rate() and "lora" in study.operating_rate()
    keeps = next(
        r
        for r in read_claims([study], plan, replicates=20)
        if r.claim.arm == "curlora" and r.claim.kind != "matched"
    )
    assert not keeps.readable and "no rate of curlora can be chosen" in keeps.reason
    assert "CURLoRA has no operating rate" in narration.continued_training(study)
    caption = plots.domain_losses(study).texts[-1].get_text().replace("\n", " ")
    assert "no operating rate" in caption and caption.endswith("CURLoRA")
    # Every reader of the arm still draws and prints: nothing names a rate it did not choose.
    assert figure_problems(plots.domain_frontiers(study)) == []
    table = forgets_least(study, plan, None, replicates=20).table
    assert table.loc["CURLoRA", "operating rate"].startswith("none")
    assert "none (a broken run at every rate)" not in domain_section(study, replicates=20).page


def test_the_peer_table_chooses_each_rate_on_the_seeds_the_claims_read():
    """A seed missing at one rate of an arm leaves that arm's choice of rate: the table must not
    let the seed's other runs pull the choice elsewhere."""
    index = _study(range(4)).index
    chosen = DomainStudy(list(index.values()), base_rank=16).operating_rate()["full"]
    del index[("full", next(lr for lr in (1e-4, 1e-3, 1e-2) if lr != chosen), 3)]
    assert DomainStudy(list(index.values()), base_rank=16).operating_rate()["full"] == chosen
    # Seed 3's run at that rate validates terribly: read on every seed, another rate would win.
    pair = index[("full", chosen, 3)].nll["target-val"]
    pair["after"] = [[nll + 50 * tokens, tokens] for nll, tokens in pair["after"]]
    study = DomainStudy(list(index.values()), base_rank=16)
    assert study.operating_rate()["full"] == chosen
    table = forgets_least(study, load_plan(protocol="domain"), None, replicates=20).table
    assert table.loc["full fine-tuning", "operating rate"] == f"{chosen:g}"


def test_a_change_needs_the_same_windows_before_and_after():
    run = _synthetic("lora", 1e-3, 0, 0.05)
    pair = run.nll["general-eval"]
    pair["after"] = [[nll, tokens - 1] for nll, tokens in pair["after"]]
    with pytest.raises(ValueError, match="general-eval NLLs before and after"):
        run.windows("general-eval")
    pair["after"] = pair["after"][:-1]
    with pytest.raises(ValueError, match="not a paired measurement"):
        run.change("general-eval")


def test_a_matched_verdict_names_the_learning_it_is_read_over():
    study = _study(range(3))
    table = study.frontier_table()
    for r in read_claims([study], load_plan(protocol="domain"), replicates=20):
        if r.claim.kind != "matched":
            assert r.learning is None
            continue
        lo, hi = r.learning
        # The range both frontiers reach: inside each arm's span of mean learning, and both
        # arms' lowest rates learn no more than its start (each frontier covers all of it).
        for arm in r.claim.arms():
            learned = table.loc[table["arm"] == arm, "learning_val"]
            assert learned.min() <= lo < hi <= learned.max()
        assert lo == pytest.approx(
            max(table.loc[table["arm"] == a, "learning_val"].min() for a in r.claim.arms())
        )
        assert f"where both reach {lo:.2g} to {hi:.2g}, learned: domain validation" in (
            claim_sentence(r)
        )


def lr_seed(lr: float) -> int:
    """A different seed breaks at each rate: no one seed is to blame for the arm."""
    return {1e-4: 0, 1e-3: 1, 1e-2: 2}[lr]


def test_a_study_refuses_two_settings_under_one_name():
    a = _synthetic("lora", 1e-3, 0, 0.05)
    b = _synthetic("lora", 1e-3, 0, 0.05)
    b.spec = b.spec.replace(steps=7)
    with pytest.raises(ValueError, match="differ in other settings"):
        DomainStudy([a, b])


def test_the_figures_the_sentence_and_the_section_come_from_the_runs():
    study = _study(range(3))
    for fig in (plots.domain_frontiers(study), plots.domain_losses(study)):
        assert figure_problems(fig) == []
    assert figure_problems(plots.domain_frontiers(study, ["curlora"], "eval")) == []
    text = narration.continued_training(study)
    assert "CURLoRA (rate" in text and "nats per token" in text and "By point estimate, " in text
    section = domain_section(study, replicates=100, page="FINDINGS.md")
    page, box = section.page, section.readme
    assert '<a id="protocol-2"></a>' in page and "Decision box" in box
    assert "(FINDINGS.md#claim-curlora-vs-lora-domain)" in box
    assert explorers.domain_explorer(study) is not None


def test_tables_figures_and_text_read_each_arm_on_the_seeds_its_claims_read():
    """An arm missing a seed at one rate is read on the seeds that ran all of its rates, as
    the claims read it; a rate where a run broke has no mean anywhere, and every reader says so."""
    index = _study(range(4)).index
    del index[("full", 1e-4, 3)]
    index[("lora", 1e-2, 0)].loss = [1.0, float("nan")]
    runs = list(index.values())
    study = DomainStudy(runs, base_rank=16)
    assert study.arm_seeds()["full"] == (0, 1, 2) and study.arm_seeds()["curlora"] == (0, 1, 2, 3)
    table = study.frontier_table().set_index(["arm", "lr"])
    assert (table.loc["full", "seeds"] == 3).all() and (table.loc["curlora", "seeds"] == 4).all()
    assert table.loc[("lora", 1e-2), "broke"] == 1
    assert np.isnan(table.loc[("lora", 1e-2), "forgetting"])
    assert study.operating_rate()["lora"] != 1e-2
    full = [r.forgetting("eval") for r in study.runs_of("full", 1e-3) if r.spec.seed < 3]
    assert table.loc[("full", 1e-3), "forgetting"] == pytest.approx(np.mean(full))
    fig = plots.domain_frontiers(study)
    assert figure_problems(fig) == []
    caption = fig.texts[-1].get_text().replace("\n", " ")
    assert "seeds per arm: CURLoRA 4" in caption and "full fine-tuning 3" in caption
    assert "broke" in caption
    assert "seeds per arm:" in narration.continued_training(study)
    rows = domain_section(study, replicates=50).page
    assert "none: 1 of 4 runs broke" in rows


def test_protocol_2_refuses_a_plan_asking_for_another_axis_or_selection():
    plan = load_plan(protocol="domain")
    for other in ({"plasticity_axis": "brier"}, {"selection": "final_val_nll"}):
        with pytest.raises(ValueError, match="Protocol 2 reads learning"):
            _study(range(2)).cells(dataclasses.replace(plan, **other))


def test_the_plan_names_the_runs_of_its_design():
    plan = load_plan(protocol="domain")
    specs = domain_design(plan)
    d = plan.design
    assert {s.seed for s in specs} == set(d["seeds"])
    assert len(specs) == sum(map(len, d["rates"].values())) * len(d["seeds"])
    with pytest.raises(ValueError, match="No learning rates"):
        domain_specs("tiny-llama", "python-stdlib", 4, ["curlora"], {}, [0])


def test_the_command_line_runs_continued_training(tmp_path, monkeypatch, capsys):
    from curlora.experiment.cli import main

    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path))
    args = ["--domain", str(_folder(tmp_path)), "--model", "tiny-llama", "--rank", "2"]
    assert (
        main([*args, "--lr", "0.01", "--methods", "curlora", "lora", "--executor", "serial"]) == 0
    )
    out = capsys.readouterr().out
    assert "domain-curlora-r2-lr0.01-s0" in out and "learning_eval" in out
    assert main([*args, "--tasks", "wiki-pairs"]) == 2
    assert "--tasks belongs to the task protocol" in capsys.readouterr().err


def test_runs_off_the_plans_design_are_named_as_deviations():
    plan = load_plan(protocol="domain")
    d = plan.design
    runs = [
        _synthetic(arm, lr, seed, 0.01 * (k + 1))
        for arm, rates in reversed(d["rates"].items())  # rank-1 LoRA's run comes before LoRA's
        for k, lr in enumerate(rates)
        for seed in d["seeds"]
    ]
    on_design = DomainStudy(runs, base_rank=d["rank"]).cells(plan).design
    assert on_design == DesignCheck(checked=True)
    # A setting the plan registers only in words (fp32, a constant rate) is checked too.
    runs[0].spec = runs[0].spec.replace(dtype="bfloat16")
    check = DomainStudy(runs, base_rank=d["rank"]).cells(plan).design
    assert any("bfloat16" in phrase and "float32" in phrase for phrase in check.differs)
    off = _study()  # seeds 0–4, where the plan runs 1–5
    check = off.cells(plan).design
    assert "not at seeds 5 of the plan's 1–5" in check.missing
    assert "also seeds 0, which the plan does not run" in check.differs
    page = domain_section(off, replicates=50)
    assert "The runs read are not the plan's design" in page.page
    assert "#protocol-2-plan)" in page.readme
    # There is no task order to leave out: the study stays whole.
    assert off.without(order=("any",)) is off and len(off.without(seed=0).seeds) == 4


def test_a_folder_domain_is_keyed_on_its_content_not_its_spelling(tmp_path, monkeypatch):
    root = _folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    relative = DomainSpec(domain="domain", model="tiny-llama")
    absolute = DomainSpec(domain=str(root), model="tiny-llama")
    assert relative.domain == absolute.domain == str(root.resolve())
    assert relative.key() == absolute.key()
    copy = tmp_path / "elsewhere" / "domain"
    copy.parent.mkdir()
    import shutil

    shutil.copytree(root, copy)
    assert DomainSpec(domain=str(copy), model="tiny-llama").key() == absolute.key()
