"""The continual-learning engine on the smoke preset (tiny model, seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from curlora import experiment
from curlora.data import load_task
from curlora.experiment import head_only as head_only_module
from curlora.experiment import preset, run, run_folder
from curlora.experiment import runner as runner_module
from curlora.experiment.batches import training_plan
from curlora.experiment.cli import main as cli
from curlora.experiment.heads import TaskModel, new_head
from curlora.experiment.precision import FrozenCast, mixed_precision
from curlora.experiment.summary import summarise
from curlora.inject import apply_adapter
from curlora.models import load_model


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))


def _ppl(results):
    return results.perplexity["perplexity"].to_numpy()


def test_results_schema_and_metrics():
    r = run(preset("smoke"), progress=False)
    assert {"stage", "after_task", "task", "split", "accuracy", "majority", "n", "correct"} <= set(
        r.accuracy
    )
    R = r.accuracy_matrix()
    assert list(R.index) == list(R.columns) == ["wiki-pairs", "movie-snippets"]
    assert np.isnan(R.iloc[0, 1]) and not R.isna().iloc[1].any()
    val = r.accuracy[r.accuracy["split"] == "val"]
    # Every task seen so far, after every stage: 1 + 2 rows.
    assert len(val) == 3 and (val["n"] == 16).all()
    V = r.accuracy_matrix("val")
    assert np.isnan(V.iloc[0, 1]) and not V.isna().iloc[1].any()
    hits = r.correctness("movie-snippets", "movie-snippets")
    assert len(hits) == 16 and hits.mean() == pytest.approx(
        R.loc["movie-snippets", "movie-snippets"]
    )
    # Per-example NLL (nats) and Brier: consistent with the means and with correctness.
    assert r.has_scores()
    nll = r.example_scores("wiki-pairs", "movie-snippets", "val", "nll")
    brier = r.example_scores("wiki-pairs", "movie-snippets", "val", "brier")
    row = r.accuracy[(r.accuracy["split"] == "val") & (r.accuracy["stage"] == 2)].iloc[0]
    assert nll.mean() == pytest.approx(row["nll"], rel=1e-3) and (nll > 0).all()
    assert brier.mean() == pytest.approx(row["brier"], rel=1e-3)
    assert ((brier >= 0) & (brier <= 2)).all()
    # Two labels: a correct example has p(true) > 1/2, so NLL < log 2 and Brier < 1/2.
    right = r.correctness("wiki-pairs", "movie-snippets", "val").astype(bool)
    assert (nll[right] < np.log(2) + 1e-3).all() and (brier[right] < 0.5 + 1e-3).all()
    assert len(r.perplexity) == 3 and r.perplexity["ratio"].iloc[0] == 1.0
    assert np.asarray(r.perplexity["nll"].iloc[0]).shape == (4, 2)  # 4 windows: (NLL, tokens)
    assert set(r.layers["stage"]) == {1, 2} and (r.layers["delta_rel"] > 0).all()
    assert len(r.layers[r.layers["stage"] == 1]) == 6  # q/k/v × 2 layers
    assert (r.layers["update_norm"] > 0).all()
    assert len(r.loss) == 2 * 4 and r.loss["loss"].notna().all()
    s = r.summary()
    assert s["adapter_params"] == 6 * 16 and s["head_params"] == 2 * (64 * 2 + 2)
    assert s["ACC"] == pytest.approx(R.iloc[-1].mean())
    assert {"train", "evaluate", "perplexity"} <= set(r.timings)
    assert r.environment["matmul_gflops"]["float32"] > 0
    text = experiment.cli.format_results(r)
    assert "accuracy matrix" in text and "Forgetting" in text and "majority-class level" in text


def test_head_only_leaves_perplexity_exactly_unchanged_and_ignores_task_order(monkeypatch):
    r = run(preset("smoke", method="head-only"), progress=False)
    assert len(set(_ppl(r))) == 1 and r.summary()["adapter_params"] == 0
    # A task's head depends on the seed and the task, not its position, and the backbone's
    # features are shared on disk: the reversed order computes none and gives the same accuracies.
    computed = []
    original = head_only_module.features
    monkeypatch.setattr(
        head_only_module, "features", lambda *a, **k: computed.append(1) or original(*a, **k)
    )
    flipped = run(
        preset("smoke", method="head-only", tasks=("movie-snippets", "wiki-pairs")), progress=False
    )
    for task in ("wiki-pairs", "movie-snippets"):
        assert flipped.accuracy_matrix().loc[task, task] == r.accuracy_matrix().loc[task, task]
    assert computed == []


def test_head_only_on_cached_features_matches_training_through_the_model():
    spec = preset("smoke", method="head-only", tasks=("movie-snippets",), train_size=24)
    fast = run(spec, progress=False, cache=False)
    lm, tok = load_model(spec.model)
    lm.set_attn_implementation(spec.attention)
    apply_adapter(lm, "head-only")
    task = load_task("movie-snippets", 24, spec.val_size, spec.eval_size, spec.seed)
    encoded = task.encode(tok, "train", spec.max_length)
    head = new_head(lm, 2, runner_module.task_seed(spec.seed, "movie-snippets"))
    plan = training_plan(
        [len(e["input_ids"]) for e in encoded],
        spec.batch_size,
        runner_module.task_seed(spec.seed, "movie-snippets"),
        3,
    )
    from accelerate import Accelerator

    losses = runner_module.train_task(
        Accelerator(cpu=True),
        TaskModel(lm, head),
        encoded,
        plan,
        tok.pad_token_id,
        spec,
        "t",
        False,
    )
    np.testing.assert_allclose(losses, fast.loss["loss"].to_numpy(), rtol=1e-4, atol=1e-5)


def test_frozen_weights_cast_once_give_bit_identical_logits():
    lm, tok = load_model("tiny-llama")
    apply_adapter(lm, "curlora", rank=4)
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with mixed_precision(torch.device("cpu"), "bfloat16"):
        reference = lm(ids).logits
        with FrozenCast(lm, torch.bfloat16).active():
            cast = lm(ids).logits
    assert torch.equal(reference, cast)
    assert lm.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.float32  # restored


def test_training_plan_covers_each_example_once_per_epoch_grouped_by_length():
    lengths = [int(x) for x in np.random.default_rng(0).integers(5, 50, 100)]
    plan = training_plan(lengths, 8, seed=3, steps=13)
    assert sorted(i for b in plan for i in b) == list(range(100))
    assert (
        training_plan(lengths, 8, seed=3, steps=13)
        == plan
        != training_plan(lengths, 8, seed=4, steps=13)
    )
    padded = sum(max(lengths[i] for i in b) * len(b) for b in plan)
    rng = np.random.default_rng(1).permutation(100)
    random = sum(
        max(lengths[i] for i in rng[k : k + 8]) * len(rng[k : k + 8]) for k in range(0, 100, 8)
    )
    assert padded < random
    assert len(training_plan(lengths, 8, seed=3, steps=30)) == 30  # a second epoch, reshuffled


def test_zero_steps_of_curlora_leave_perplexity_unchanged():
    r = run(preset("smoke", max_steps=0), progress=False)
    assert len(set(_ppl(r))) == 1 and (r.layers["delta_norm"] == 0).all()


def test_lora_with_a_high_learning_rate_raises_perplexity_more_than_curlora():
    lora = _ppl(run(preset("smoke", method="lora", lr=0.05), progress=False))
    assert lora[-1] > lora[0] * 1.01
    cur = _ppl(run(preset("smoke", method="curlora", lr=0.05), progress=False))
    assert abs(cur[-1] / cur[0] - 1) < abs(lora[-1] / lora[0] - 1)


def test_same_seed_identical_and_cache_skips_training(monkeypatch):
    spec = preset("smoke", method="svd")
    first = run(spec, progress=False, cache=False)
    second = run(spec, progress=False)
    pd.testing.assert_frame_equal(first.accuracy, second.accuracy)
    pd.testing.assert_frame_equal(first.perplexity, second.perplexity)

    def no_training(*_, **__):
        raise AssertionError("a cached run trained again")

    monkeypatch.setattr(runner_module, "train_task", no_training)
    third = run(spec, progress=False)
    pd.testing.assert_frame_equal(second.layers, third.layers)


def test_resume_after_interruption_matches_uninterrupted(monkeypatch):
    spec = preset("smoke", tasks=("wiki-pairs", "movie-snippets", "tweets-3class"))
    whole = run(spec, progress=False, cache=False)
    assert run(spec, progress=False, stop_after_task=0) is None
    folder = run_folder(spec)
    assert (folder / "stage0.json").is_file() and not (folder / "results.json.gz").exists()
    trained = []
    original = runner_module.train_task
    monkeypatch.setattr(
        runner_module, "train_task", lambda *a, **k: trained.append(a[6]) or original(*a, **k)
    )
    resumed = run(spec, progress=False)
    assert trained == ["train movie-snippets", "train tweets-3class"]
    for name in ("accuracy", "perplexity", "loss"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(resumed, name))
    pd.testing.assert_frame_equal(whole.layers, resumed.layers, rtol=1e-3)


def test_summaries_never_pool_different_specs():
    a = [run(preset("smoke", method="head-only", seed=s), progress=False) for s in (0, 1)]
    b = run(preset("smoke", method="head-only", seed=0, alpha=2.0), progress=False)
    c = run(preset("smoke", method="head-only", seed=0, train_size=16), progress=False)
    table = summarise([*a, b, c])
    assert list(table["n_seeds"]) == [2, 1, 1]  # alpha and train_size are not pooled as seeds
    assert a[0].spec.group_key() == a[1].spec.group_key() != b.spec.group_key()


def test_summaries_name_other_ranks_and_pool_ratios_on_the_log_scale():
    from synthetic_runs import fake_run

    from curlora.tables import summary_table

    runs = [
        fake_run("lora", 1e-3, seed, 0.7, 0.7, ratio, 0.1, rank=rank)
        for rank in (4, 1)
        for seed, ratio in enumerate((1.0, 100.0))
    ]
    table = summary_table(runs, base_rank=4).set_index("arm")
    # Rank 1 at the study's rank 4 is its own arm, not LoRA's.
    assert list(table.index) == ["lora", "lora-r1"]
    # Ratios ×1 and ×100 pool to ×10 (geometric), not ×50.5; the interval is a factor either side.
    assert table.loc["lora", "ppl_ratio_gmean"] == pytest.approx(10.0)
    assert table.loc["lora", "ppl_ratio_factor"] > 10.0
    assert "ppl_ratio_mean" not in table.columns


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="method"):
        preset("smoke", method="bogus")
    with pytest.raises(ValueError, match="evidence"):
        preset("gpu")
    with pytest.raises(ValueError, match="rank"):
        preset("smoke", rank=0)
    with pytest.raises(ValueError, match="Unknown spec field"):
        preset("smoke", learning_rate=1.0)
    with pytest.raises(ValueError, match="twice"):
        preset("smoke", tasks=("wiki-pairs", "wiki-pairs"))
    with pytest.raises(ValueError, match="autocast"):
        preset("smoke", autocast="int8")


def test_command_line_prints_the_matrix(capsys):
    assert cli(["--preset", "smoke", "--method", "head-only", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "accuracy matrix" in out and "head-only-r4" in out and "perplexity" in out
    assert cli(["--preset", "smoke", "--tasks", "no-such-file.csv"]) == 2
    assert "No task file" in capsys.readouterr().err


def test_command_line_sweep_table(capsys):
    cli(
        [
            "--preset",
            "smoke",
            "--methods",
            "head-only",
            "curlora",
            "--seeds",
            "0",
            "1",
            "--tasks",
            "movie-snippets",
            "--executor",
            "serial",
        ]
    )
    out = capsys.readouterr().out
    assert "ACC_mean" in out and "ppl_ratio_factor" in out and out.count("accuracy matrix") == 4


def test_command_line_sweep_without_cache_writes_nothing(tmp_path, capsys):
    args = ["--preset", "smoke", "--methods", "head-only", "--seeds", "0", "1"]
    assert cli([*args, "--tasks", "movie-snippets", "--no-cache"]) == 0
    assert capsys.readouterr().out.count("accuracy matrix") == 2
    assert not (tmp_path / "results").exists()


TWO_PROCESS = textwrap.dedent("""
    import json, sys
    import torch
    from accelerate import PartialState
    from curlora.experiment import preset, run
    torch.set_num_threads(1)
    r = run(preset("smoke", batch_size=8), progress=False)
    if PartialState().is_main_process:
        summary = {"world": PartialState().num_processes, "loss": r.loss["loss"].tolist()}
        json.dump({**summary, **r.summary()}, open(sys.argv[1], "w"))
""")


def test_two_processes_match_one_within_tolerance(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS)
    out, again = tmp_path / "two.json", tmp_path / "again.json"
    env = {**os.environ, "CURLORA_RESULTS": str(tmp_path / "results")}
    for path in (out, again):  # computed into the cache (one lock for both ranks), then read back
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        subprocess.run(
            [*cmd, str(script), str(path)], check=True, capture_output=True, timeout=300, env=env
        )
    two = json.loads(out.read_text())
    assert json.loads(again.read_text()) == two
    assert (tmp_path / "results" / run_folder(preset("smoke", batch_size=8)).name).is_dir()
    single = run(preset("smoke", batch_size=8), progress=False, cache=False)
    one = single.summary()
    assert two["world"] == 2
    # Each process trains on its share of every batch, so the two runs take the same
    # optimisation steps; only the order of floating-point sums differs (gradient all-reduce).
    assert two["loss"] == pytest.approx(single.loss["loss"].tolist(), rel=1e-3)
    assert two["ppl_final"] == pytest.approx(one["ppl_final"], rel=1e-4)
    for key in one:
        if key.startswith(("final_acc", "own_acc")):
            assert abs(two[key] - one[key]) <= 1 / 16 + 1e-9  # at most one of 16 eval examples


def test_bfloat16_autocast_trains_and_measures():
    mixed = run(
        preset("smoke", method="curlora", tasks=("movie-snippets",), autocast="bfloat16"),
        progress=False,
    )
    assert mixed.spec.autocast == "bfloat16" and mixed.loss["loss"].notna().all()
    assert np.isfinite(_ppl(mixed)).all()
