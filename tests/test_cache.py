"""The results cache under failure and concurrency: corrupt entries, racing workers, executors."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pandas as pd
import pytest

from curlora.experiment import CacheWarning, preset, run, run_folder, run_many
from curlora.experiment.records import StageRecord

SPEC = dict(tasks=("movie-snippets", "tweets-3class"), train_size=16)


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))


def _same(a, b):
    for name in ("accuracy", "perplexity", "loss"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: max(1, len(data) // 2)])
    elif how == "flipped":  # bytes inside the compressed stream: zlib's own error, not gzip's
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]))
    else:
        path.write_text("{not json")


def test_a_stage_record_reads_and_writes_the_stage_json_as_the_runner_saves_it():
    spec = preset("smoke", **SPEC)
    run(spec, progress=False)
    for path in sorted(run_folder(spec).glob("stage*.json")):
        stored = json.loads(path.read_text())
        record = StageRecord.from_dict(stored)
        assert record.timings and record.to_dict() == stored
        assert json.dumps(record.to_dict()) == path.read_text()  # the same bytes, key order too
    del stored["timings"]  # as stages saved before timings were recorded
    assert StageRecord.from_dict(stored).to_dict() == stored
    del stored["loss"]
    with pytest.raises(KeyError, match="stage record"):
        StageRecord.from_dict(stored)


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_corrupt_results_file_is_set_aside_and_recomputed(how):
    spec = preset("smoke", **SPEC)
    first = run(spec, progress=False)
    path = run_folder(spec) / "results.json.gz"
    _damage(path, how)
    with pytest.warns(CacheWarning, match="results.json.gz"):
        again = run(spec, progress=False)
    _same(first, again)
    assert path.is_file() and any(
        p.name.startswith("results.json.gz.corrupt-") for p in path.parent.iterdir()
    )


@pytest.mark.parametrize(
    "which", ["stage0.json", "stage0.safetensors", "stage1.json", "stage1.safetensors"]
)
def test_corrupt_stage_is_set_aside_and_training_resumes(which):
    spec = preset("smoke", **SPEC)
    whole = run(spec, progress=False, cache=False)
    assert run(spec, progress=False, stop_after_task=1) is None  # both stages saved, no results yet
    folder = run_folder(spec)
    _damage(folder / which, "truncated")
    with pytest.warns(CacheWarning, match=which):
        resumed = run(spec, progress=False)
    _same(whole, resumed)
    assert any(p.name.startswith(f"{which}.corrupt-") for p in folder.iterdir())


@pytest.mark.parametrize("how", ["garbage", "without its value"])
def test_corrupt_shared_perplexity_is_recomputed(how):
    spec = preset("smoke", **SPEC)
    first = run(spec, progress=False)
    shared = next((run_folder(spec).parent / "initial-perplexity").glob("*.json"))
    if how == "garbage":
        _damage(shared, how)
    else:
        shared.write_text('{"other": 1}')  # sound JSON, but not the value the runs read
    with pytest.warns(CacheWarning, match="initial-perplexity"):
        other = run(spec.replace(seed=1), progress=False)
    assert other.perplexity["nll"].iloc[0] == first.perplexity["nll"].iloc[0]


RACE = textwrap.dedent("""
    import json, sys
    from curlora.experiment import preset, run
    r = run(preset("smoke", tasks=("movie-snippets", "tweets-3class"), train_size=16), progress=False)
    json.dump(r.timings, open(sys.argv[1], "w"))
""")


def test_two_processes_racing_on_one_spec_train_it_once(tmp_path):
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = {**os.environ}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"t{i}.json")], env=env)
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    timings = [json.loads((tmp_path / f"t{i}.json").read_text()) for i in range(2)]
    # One process trained; the other waited on the lock and read its results (same timings).
    assert timings[0] == timings[1] and timings[0]["train"] > 0
    folder = run_folder(preset("smoke", **SPEC))
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "results.json.gz",
        "stage0.json",
        "stage0.safetensors",
        "stage1.json",
        "stage1.safetensors",
    ]


def test_racing_processes_set_a_corrupt_results_file_aside_once(tmp_path):
    spec = preset("smoke", **SPEC)
    first = run(spec, progress=False)
    folder = run_folder(spec)
    _damage(folder / "results.json.gz", "flipped")
    script = tmp_path / "race.py"
    script.write_text(RACE)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"t{i}.json")])
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    # Only the process holding the lock set the damaged file aside; the other read its results.
    assert len([p for p in folder.iterdir() if ".corrupt-" in p.name]) == 1
    _same(first, run(spec, progress=False))


def _specs():
    return [
        preset("smoke", **SPEC, method=m, seed=s) for m in ("curlora", "head-only") for s in (0, 1)
    ]


def test_worker_processes_give_the_serial_results(tmp_path, monkeypatch):
    serial = run_many(_specs(), executor="serial", progress=False)
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "other"))
    parallel = run_many(_specs(), executor="processes", workers=2, progress=False)
    for a, b in zip(serial, parallel, strict=True):
        _same(a, b)


def test_a_local_dask_cluster_runs_a_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = run_many(_specs(), executor=client, progress=False)
    assert [r.spec for r in results] == _specs()
    cached = run_many(_specs(), executor="serial", progress=False)  # all from the shared cache
    for a, b in zip(results, cached, strict=True):
        _same(a, b)


def test_the_command_line_sends_a_sweep_to_a_scheduler_address(capsys):
    distributed = pytest.importorskip("distributed")
    from curlora.experiment.cli import main as cli

    args = ["--preset", "smoke", "--methods", "head-only", "--seeds", "0", "1", "--tasks"]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert cli([*args, *SPEC["tasks"], "--executor", cluster.scheduler_address]) == 0
    assert capsys.readouterr().out.count("accuracy matrix") == 2
    spec = preset("smoke", tasks=SPEC["tasks"], method="head-only", seed=1)
    assert (run_folder(spec) / "results.json.gz").is_file()  # written by a cluster worker
    with pytest.raises(SystemExit):
        cli([*args, *SPEC["tasks"], "--executor", "threads"])
    assert "tcp://scheduler:8786" in capsys.readouterr().err


def test_adapter_runs_are_submitted_before_head_only_runs():
    # Longest first: the short head-only runs fill the end of a sweep, not an adapter run.
    import concurrent.futures as cf

    class Recording(cf.ThreadPoolExecutor):
        submitted: list[str] = []

        def submit(self, fn, spec, *args):
            self.submitted.append(spec.method)
            return super().submit(fn, spec, *args)

    specs = [preset("smoke", **SPEC, method=m, seed=3) for m in ("head-only", "curlora", "lora")]
    with Recording(1) as pool:
        results = run_many(specs, executor=pool, progress=False)
    assert Recording.submitted == ["curlora", "lora", "head-only"]
    assert [r.spec for r in results] == specs


def test_identical_specs_are_computed_once():
    spec = preset("smoke", **SPEC, method="head-only")
    results = run_many([spec, spec, spec.replace(seed=1)], executor="serial", progress=False)
    assert results[0] is results[1] and results[0] is not results[2]


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="serial"):
        run_many([preset("smoke", **SPEC, seed=7)], executor="threads", progress=False)


def test_results_are_small_gzip_json():
    spec = preset("smoke", **SPEC)
    run(spec, progress=False)
    path = run_folder(spec) / "results.json.gz"
    payload = json.loads(gzip.decompress(path.read_bytes()))
    assert payload["spec"]["train_size"] == 16 and path.stat().st_size < 60_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(spec, progress=False)  # a sound entry loads without any warning


THREE = ("wiki-pairs", "movie-snippets", "tweets-3class")


def _trained_tasks(monkeypatch) -> list[str]:
    from curlora.experiment import runner

    trained: list[str] = []
    original = runner.train_task
    monkeypatch.setattr(
        runner, "train_task", lambda *a, **k: trained.append(a[6]) or original(*a, **k)
    )
    return trained


@pytest.mark.parametrize("ppl_stages", ["each", "final"])
def test_orders_sharing_a_first_task_share_its_stage(monkeypatch, ppl_stages):
    paper = preset("smoke", tasks=THREE, train_size=16, ppl_stages=ppl_stages)
    other = paper.replace(tasks=("wiki-pairs", "tweets-3class", "movie-snippets"))
    alone = run(other, progress=False, cache=False)
    run(paper, progress=False)
    trained = _trained_tasks(monkeypatch)
    shared = run(other, progress=False)
    assert trained == ["train tweets-3class", "train movie-snippets"]  # wiki-pairs was copied
    _same(alone, shared)
    pd.testing.assert_frame_equal(alone.layers, shared.layers, rtol=1e-3)


def test_a_stage_is_not_shared_where_one_run_measures_perplexity_and_the_other_not(monkeypatch):
    # With perplexity measured only at the end, a one-task run's stage 0 ends with a
    # measurement that the two-task run's stage 0 does not make: not the same stage.
    short = preset("smoke", tasks=("wiki-pairs",), train_size=16, ppl_stages="final")
    run(short, progress=False)
    trained = _trained_tasks(monkeypatch)
    run(short.replace(tasks=("wiki-pairs", "movie-snippets")), progress=False)
    assert trained == ["train wiki-pairs", "train movie-snippets"]


def test_a_longer_sequence_copies_every_stage_of_a_finished_shorter_one(monkeypatch):
    short = preset("smoke", tasks=THREE[:2], train_size=16)  # perplexity after every task
    done = run(short, progress=False)
    trained = _trained_tasks(monkeypatch)
    longer = run(short.replace(tasks=THREE), progress=False)
    assert trained == ["train tweets-3class"]
    _same(run(short.replace(tasks=THREE), progress=False, cache=False), longer)
    # The copied stages' recorded compute is part of the run's cost.
    assert longer.timings["train"] > done.timings["train"]
    trained.clear()
    run(short.replace(tasks=THREE, seed=1), progress=False)  # another seed shares nothing
    assert trained[0] == "train wiki-pairs"


@pytest.mark.parametrize("damage", ["entry", "missing", "truncated"])
def test_a_broken_shared_stage_is_trained_instead(monkeypatch, damage):
    paper = preset("smoke", tasks=THREE, train_size=16)
    other = paper.replace(tasks=("wiki-pairs", "tweets-3class", "movie-snippets"))
    alone = run(other, progress=False, cache=False)
    run(paper, progress=False)
    source = run_folder(paper) / "stage0.safetensors"
    if damage == "entry":
        for entry in (run_folder(paper).parent / "shared-stages").iterdir():
            entry.write_text("{not json")
    elif damage == "missing":
        source.unlink()
    else:
        _damage(source, "truncated")
    trained = _trained_tasks(monkeypatch)
    if damage == "truncated":  # copied, then found unreadable like any stage of the run's own
        with pytest.warns(CacheWarning, match="stage0.safetensors"):
            again = run(other, progress=False)
    else:
        again = run(other, progress=False)
    _same(alone, again)
    assert trained[0] == "train wiki-pairs"
