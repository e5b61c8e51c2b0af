"""The continual-learning engine on the smoke preset (tiny model, seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from curlora import continual
from curlora.continual import preset, run


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))


def _ppl(results):
    return results.perplexity["perplexity"].to_numpy()


def test_results_schema_and_metrics():
    r = run(preset("smoke"), progress=False)
    assert list(r.accuracy.columns) == ["stage", "after_task", "task", "accuracy", "majority"]
    R = r.accuracy_matrix()
    assert list(R.index) == list(R.columns) == ["wiki-pairs", "movie-snippets"]
    assert np.isnan(R.iloc[0, 1]) and not R.isna().iloc[1].any()
    assert len(r.perplexity) == 3 and r.perplexity["ratio"].iloc[0] == 1.0
    assert set(r.layers["stage"]) == {1, 2} and (r.layers["delta_rel"] > 0).all()
    assert len(r.layers[r.layers["stage"] == 1]) == 6  # q/k/v × 2 layers
    assert len(r.layers["u_sv"].iloc[0]) == 4
    assert len(r.loss) == 2 * 4 and r.loss["loss"].notna().all()
    s = r.summary()
    assert s["adapter_params"] == 6 * 16 and s["head_params"] == 2 * (64 * 2 + 2)
    assert s["ACC"] == pytest.approx(R.iloc[-1].mean())
    text = continual.format_results(r)
    assert "accuracy matrix" in text and "Forgetting" in text and "majority-class level" in text


def test_head_only_leaves_perplexity_exactly_unchanged():
    r = run(preset("smoke", method="head-only"), progress=False)
    assert len(set(_ppl(r))) == 1 and r.summary()["adapter_params"] == 0


def test_zero_steps_of_curlora_leave_perplexity_unchanged():
    r = run(preset("smoke", max_steps=0), progress=False)
    assert len(set(_ppl(r))) == 1 and (r.layers["delta_norm"] == 0).all()


def test_lora_with_a_high_learning_rate_raises_perplexity():
    # The smoke model is random (perplexity ≈ its 257-token vocabulary), so changes are small;
    # measured after both tasks: LoRA +4.8%, CURLoRA at the same rate −0.01%.
    lora = _ppl(run(preset("smoke", method="lora", lr=0.05), progress=False))
    assert lora[-1] > lora[0] * 1.01
    cur = _ppl(run(preset("smoke", method="curlora", lr=0.05), progress=False))
    assert abs(cur[-1] / cur[0] - 1) < abs(lora[-1] / lora[0] - 1) / 10


def test_same_seed_identical_and_cache_skips_training(monkeypatch):
    spec = preset("smoke", method="svd")
    first = run(spec, progress=False, cache=False)
    second = run(spec, progress=False)
    pd.testing.assert_frame_equal(first.accuracy, second.accuracy)
    pd.testing.assert_frame_equal(first.perplexity, second.perplexity)

    def no_training(*_, **__):
        raise AssertionError("a cached run trained again")

    monkeypatch.setattr(continual, "_train_task", no_training)
    third = run(spec, progress=False)
    pd.testing.assert_frame_equal(second.layers, third.layers)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    spec = preset("smoke", tasks=("wiki-pairs", "movie-snippets", "tweets-3class"))
    whole = run(spec, progress=False, cache=False)
    assert run(spec, progress=False, stop_after_task=0) is None
    folder = continual.results_dir(spec)
    assert (folder / "stage0.json").is_file() and not (folder / "results.json").exists()
    trained = []
    original = continual._train_task
    monkeypatch.setattr(
        continual, "_train_task", lambda *a, **k: trained.append(a[3].name) or original(*a, **k)
    )
    resumed = run(spec, progress=False)
    assert trained == ["movie-snippets", "tweets-3class"]
    for name in ("accuracy", "perplexity", "layers", "loss"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(resumed, name))


def test_sweep_gives_mean_and_ci_per_spec():
    specs = [preset("smoke", method=m, train_size=16) for m in ("curlora", "head-only")]
    table = continual.sweep(specs, seeds=[0, 1])
    assert list(table["method"]) == ["curlora", "head-only"] and (table["n_seeds"] == 2).all()
    assert {"ACC_mean", "ACC_ci", "ppl_ratio_mean", "BWT_mean", "Forgetting_ci"} <= set(
        table.columns
    )
    assert table.loc[table["method"] == "head-only", "ppl_ratio_mean"].item() == 1.0


def test_lr_sweep_rows():
    table = continual.lr_sweep(preset("smoke", train_size=16), ["curlora", "lora"], [1e-3, 1e-2])
    assert len(table) == 4 and set(table["method"]) == {"curlora", "lora"}
    assert {"accuracy", "majority", "ppl_increase", "delta_rel"} <= set(table.columns)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="method"):
        preset("smoke", method="dora")
    with pytest.raises(ValueError, match="cpu-full"):
        preset("gpu")
    with pytest.raises(ValueError, match="rank"):
        preset("smoke", rank=0)
    with pytest.raises(ValueError, match="Unknown spec field"):
        preset("smoke", learning_rate=1.0)


def test_command_line_prints_the_matrix(capsys):
    continual.main(["--preset", "smoke", "--method", "head-only", "--seed", "1"])
    out = capsys.readouterr().out
    assert "accuracy matrix" in out and "head-only-r4" in out and "perplexity" in out


TWO_PROCESS = textwrap.dedent("""
    import json, sys
    import torch
    from accelerate import PartialState
    from curlora.continual import preset, run
    torch.set_num_threads(1)
    r = run(preset("smoke", batch_size=8), progress=False, cache=False)
    if PartialState().is_main_process:
        json.dump({"world": PartialState().num_processes, **r.summary()}, open(sys.argv[1], "w"))
""")


def test_two_processes_match_one_within_tolerance(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS)
    out = tmp_path / "two.json"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        str(script),
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    two = json.loads(out.read_text())
    one = run(preset("smoke", batch_size=8), progress=False, cache=False).summary()
    assert two["world"] == 2
    # split_batches keeps the global batch, so the two runs take the same optimisation steps;
    # only the order of floating-point sums differs (gradient all-reduce).
    assert two["ppl_final"] == pytest.approx(one["ppl_final"], rel=1e-4)
    for key in one:
        if key.startswith(("final_acc", "own_acc")):
            assert abs(two[key] - one[key]) <= 1 / 16 + 1e-9  # at most one of 16 eval examples


def test_command_line_sweep_table(capsys):
    continual.main(
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
        ]
    )
    out = capsys.readouterr().out
    assert "ACC_mean" in out and "ppl_ratio_ci" in out and out.count("accuracy matrix") == 4


def test_bfloat16_autocast_trains_and_keeps_perplexity_in_full_precision():
    plain = run(preset("smoke", method="head-only", tasks=("movie-snippets",)), progress=False)
    mixed = run(
        preset("smoke", method="head-only", tasks=("movie-snippets",), autocast="bfloat16"),
        progress=False,
    )
    assert mixed.spec.autocast == "bfloat16" and mixed.loss["loss"].notna().all()
    # Perplexity is always measured in the model's dtype, so the frozen model scores the same.
    assert _ppl(mixed).tolist() == _ppl(plain).tolist()
    with pytest.raises(ValueError, match="autocast"):
        preset("smoke", autocast="int8")
