"""This machine: a bounded precision probe, measured once and shared, and the cost of runs here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from curlora.experiment import machine, precision, preset
from curlora.experiment.cost import (
    duration,
    emulated_precision_error,
    estimate_seconds,
    forward_weights,
    run_flops,
)
from curlora.experiment.design import study_design
from curlora.experiment.precision import fastest_autocast
from curlora.models import load_model

#: The three kinds of machine measured (GFLOP/s on a 2048² product, two threads): an AMD EPYC
#: with AVX-512 BF16, an Intel Xeon without AMX, and an AMD EPYC with AVX2 only (bf16 emulated).
EPYC_AVX512 = {"float32": 172.0, "bfloat16": 354.0}
XEON = {"float32": 284.4, "bfloat16": 162.6}
EPYC_AVX2 = {"float32": 126.0, "bfloat16": 0.3}


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(machine.AUTOCAST_ENV, raising=False)


def test_fastest_autocast_follows_the_measured_rates():
    assert fastest_autocast(EPYC_AVX512) == "bfloat16"
    assert fastest_autocast(XEON) is None
    assert fastest_autocast(EPYC_AVX2) is None
    # Near parity autocast's casts and rounding are not worth it: fp32, the reference precision.
    assert fastest_autocast({"float32": 100.0, "bfloat16": 120.0}) is None


def test_probe_is_bounded_when_a_precision_is_emulated(monkeypatch):
    slow = 0.2  # seconds per bf16 product, whatever its size: slower than any real CPU's 128²

    def product(a, b):
        if a.dtype == torch.bfloat16:
            time.sleep(slow)
        return a @ b

    monkeypatch.setattr(precision, "_product", product)
    start = time.perf_counter()
    rates = precision.matmul_rate.__wrapped__()
    seconds = time.perf_counter() - start
    # fp32 grows to 2048² within its budget; bf16 stops at the first size that is slow enough.
    assert seconds < 2 * precision.PROBE_BUDGET_SECONDS + 4 * slow
    assert rates["bfloat16"] < 0.1 and fastest_autocast(rates) is None
    assert rates["float32"] > 1


def test_probe_measures_every_size_it_needs_on_a_fast_machine(monkeypatch):
    sizes = []

    def product(a, b):
        sizes.append(a.shape[0])
        return a[:1, :1]  # instant: the probe should grow to its largest size and repeat there

    monkeypatch.setattr(precision, "_product", product)
    precision.product_rate(torch.float32)
    assert sizes[: len(precision.PROBE_SIZES) + 1] == [128, *precision.PROBE_SIZES]
    assert sizes[len(precision.PROBE_SIZES) + 1 :] == [2048] * 4


def test_cpu_preset_takes_the_machine_precision_unless_told(monkeypatch):
    for measured in (None, "bfloat16"):
        monkeypatch.setattr("curlora.experiment.presets.machine_autocast", lambda m=measured: m)
        assert preset("cpu").autocast == measured
        assert preset("cpu", autocast="bfloat16").autocast == "bfloat16"
        assert preset("cpu", autocast=None).autocast is None
        # The evidence preset keeps the precision its committed results were computed in.
        assert preset("evidence").autocast == "bfloat16"


def test_machine_precision_is_measured_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(machine, "matmul_rate", lambda: EPYC_AVX512)
    assert machine.machine_autocast() == "bfloat16"
    (kept,) = (tmp_path / "cache" / "machine-precision").glob("*.json")
    assert json.loads(kept.read_text())["matmul_gflops"] == EPYC_AVX512
    # A later measurement under load (bf16 halved) cannot flip the choice for this machine.
    monkeypatch.setattr(machine, "matmul_rate", lambda: {"float32": 172.0, "bfloat16": 80.0})
    assert machine.machine_autocast() == "bfloat16"
    assert preset("cpu").autocast == "bfloat16"
    assert "fp32 172, bf16 354 GFLOP/s; precision bfloat16" in machine.describe_machine()


def test_machine_precision_can_be_fixed_by_environment(monkeypatch):
    monkeypatch.setattr(machine, "matmul_rate", lambda: {"float32": 1.0, "bfloat16": 9.0})
    monkeypatch.setenv(machine.AUTOCAST_ENV, "float32")
    assert preset("cpu").autocast is None
    # Set explicitly, it names every preset's precision: the evidence runs in fp32, keyed apart.
    assert preset("evidence").autocast is None
    assert preset("evidence").key() != preset("evidence", autocast="bfloat16").key()
    monkeypatch.setenv(machine.AUTOCAST_ENV, "bfloat16")
    assert preset("cpu").autocast == "bfloat16"
    monkeypatch.setenv(machine.AUTOCAST_ENV, "fp8")
    with pytest.raises(ValueError, match="CURLORA_AUTOCAST='fp8'.*bfloat16.*float32"):
        preset("cpu")


def test_one_measurement_is_shared_by_every_process(tmp_path):
    env = {**os.environ, "CURLORA_CACHE": str(tmp_path / "shared"), "HF_HUB_OFFLINE": "1"}
    env.pop(machine.AUTOCAST_ENV, None)
    first = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from curlora.experiment.machine import "
            "machine_measurement as m; print(json.dumps(m()['matmul_gflops']))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    # A second process whose matrix products would fail: it must read, never time again.
    second = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import json
            from curlora.experiment import precision
            def forbidden(a, b):
                raise AssertionError("measured a second time")
            precision._product = forbidden
            from curlora.experiment.machine import environment
            from curlora.experiment.presets import preset
            preset("cpu")
            print(json.dumps(environment()["matmul_gflops"]))
        """),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)


def test_forward_weights_come_from_the_config_alone():
    lm, _ = load_model("tiny-llama")
    embedding = lm.get_input_embeddings().weight.numel()
    body, head = forward_weights("tiny-llama")
    # Tied head: counted once among the parameters, and it is the embedding.
    assert body == sum(p.numel() for p in lm.parameters()) - embedding and head == embedding
    body, head = forward_weights("smollm2-135m")
    assert (body, head) == (106_203_456, 576 * 49_152)
    assert forward_weights("no/such-model-anywhere") is None


def test_estimate_scales_with_the_rate_and_the_work():
    spec = preset("smoke", model="smollm2-135m", autocast=None)
    weights = forward_weights("smollm2-135m")
    assert run_flops(spec.replace(epochs=2), weights) > run_flops(spec, weights)
    assert run_flops(spec.replace(method="head-only"), weights) < run_flops(spec, weights)
    slow = estimate_seconds([spec], EPYC_AVX2)
    assert slow == pytest.approx(2 * estimate_seconds([spec], {"float32": 252.0}))
    assert (
        duration(40) == "40 s" and duration(25 * 60) == "25 min" and duration(3 * 3600) == "3.0 h"
    )


def test_emulated_bf16_is_refused_with_its_cost_and_the_way_out(monkeypatch):
    monkeypatch.setenv("CURLORA_AUTOCAST", "bfloat16")  # the evidence preset's own precision
    evidence = study_design("evidence", arms=["curlora"], lrs={"curlora": [1e-3]}).specs()
    message = emulated_precision_error(evidence, EPYC_AVX2)
    assert "only emulates" in message and "CURLORA_AUTOCAST=float32" in message
    assert "here, against" in message and "in fp32" in message
    # Native bf16, or bf16 slower but not emulated, or a cost of seconds: no refusal.
    assert emulated_precision_error(evidence, EPYC_AVX512) is None
    assert emulated_precision_error(evidence, XEON) is None
    assert emulated_precision_error([preset("smoke", autocast="bfloat16")], EPYC_AVX2) is None


def test_evidence_recompute_stops_before_any_run_on_emulated_bf16(monkeypatch, tmp_path, capsys):
    from curlora import notebooks

    monkeypatch.setattr(machine, "matmul_rate", lambda: EPYC_AVX2)
    computed = _record_computes(monkeypatch)
    # Notebook 02 reads the first evidence, computed under bf16 autocast.
    code = notebooks.main(["run", "--profile", "evidence", "--only", "02", "--recompute"])
    assert code == 2 and not computed
    err = capsys.readouterr().err
    assert "only emulates" in err and "CURLORA_AUTOCAST=float32" in err


def test_registered_headline_recomputes_in_fp32_where_bf16_is_emulated(monkeypatch, capsys):
    from curlora import notebooks

    monkeypatch.setattr(machine, "matmul_rate", lambda: EPYC_AVX2)
    computed = _record_computes(monkeypatch)
    # Notebook 04 reads the registered study, whose plan fixes fp32: nothing to refuse.
    code = notebooks.main(["run", "--profile", "evidence", "--only", "04", "--recompute"])
    assert code == 2 and "stopped before computing" in capsys.readouterr().err
    assert computed and all(s.autocast is None for s in computed[0])


def _record_computes(monkeypatch) -> list:
    """Replace the sweep's computing step by one that records what it was given, then stops."""
    computed: list = []

    def record(pending, *args):
        computed.append(pending)
        raise RuntimeError("stopped before computing (test)")

    monkeypatch.setattr("curlora.experiment.sweep._compute", record)
    return computed
