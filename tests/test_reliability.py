"""Reliability and safety: properties over random inputs, atomic files, kill-and-resume, no pickle."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from curlora import CURLoRAConfig, CURLoRALayer, cur
from curlora.models import load_model
from curlora.storage import atomic_path, safe_name, write_text

PACKAGE = Path(__file__).resolve().parents[1] / "curlora"


@st.composite
def weights(draw):
    out_f, in_f = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out_f, in_f, generator=g) * torch.rand(1, in_f, generator=g).pow(3)
    zero_cols = draw(st.lists(st.integers(0, in_f - 1), max_size=in_f // 2))
    W[:, zero_cols] = 0  # zero-norm columns must not produce inf or NaN
    if not W.any():
        W[0, 0] = 1.0
    return W


@settings(max_examples=60, deadline=None)
@given(
    W=weights(),
    mode=st.sampled_from(cur.PROBABILITY_MODES),
    axis=st.sampled_from(["columns", "rows"]),
)
def test_probabilities_are_a_distribution(W, mode, axis):
    p = cur.selection_probabilities(W, axis, mode)
    assert torch.isfinite(p).all() and (p >= 0).all()
    assert abs(float(p.sum()) - 1) < 1e-9
    assert p.shape[0] == (W.shape[1] if axis == "columns" else W.shape[0])


@settings(max_examples=40, deadline=None)
@given(W=weights(), mode=st.sampled_from(cur.SAMPLING_MODES), data=st.data(), conv=st.booleans())
def test_layer_properties(W, mode, data, conv):
    from transformers.pytorch_utils import Conv1D

    out_f, in_f = W.shape
    rank = data.draw(st.integers(1, min(out_f, in_f)))
    if conv:
        base = Conv1D(out_f, in_f)
        base.weight.data = W.T.contiguous()
    else:
        base = nn.Linear(in_f, out_f)
        base.weight.data = W.clone()
    x = torch.randn(3, in_f)
    reference = base(x)
    layer = CURLoRALayer(base, "default", CURLoRAConfig(r=rank, sampling=mode), "w")
    C, U, R = (layer.curlora_C["default"], layer.curlora_U["default"], layer.curlora_R["default"])
    cols, rows = layer.curlora_col_idx["default"], layer.curlora_row_idx["default"]
    assert torch.equal(layer(x), reference)  # U = 0 is the identity on outputs
    assert 0 <= int(cols.min()) and int(cols.max()) < in_f
    assert 0 <= int(rows.min()) and int(rows.max()) < out_f
    assert torch.equal(C, W[:, cols]) and torch.equal(R, W[rows, :])
    with torch.no_grad():
        U.normal_()
    before = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), before, atol=1e-4, rtol=1e-4)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, (W.T if conv else W), atol=1e-5, rtol=1e-5)


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "r.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the ne")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_cache_keys_cannot_escape(tmp_path):
    for key in ["../../etc/passwd", "/abs/path", "a/../../b", "..", "~root", "x" * 500]:
        name = safe_name(key)
        assert "/" not in name and not name.startswith(".") and len(name) < 100
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert safe_name("a/b") != safe_name("a_b")  # the hash keeps distinct keys distinct


def test_no_pickle_is_ever_loaded():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if re.search(
            r"\bimport pickle\b|pickle\.load|torch\.load\((?![^)]*weights_only=True)", text
        ):
            offenders.append(path.name)
    assert not offenders, f"pickle loading in {offenders}"


def test_remote_code_is_off_by_default():
    import inspect

    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False


def test_unknown_model_names_the_offline_choices(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline models \\(smollm2-135m, tiny-llama, tiny-gpt2\\)"):
        load_model("no-such-org/no-such-model")


KILLABLE = textwrap.dedent("""
    import sys
    from curlora.experiment import preset, run
    run(preset("smoke", tasks=("wiki-pairs", "movie-snippets", "tweets-3class"), train_size=64), progress=False)
""")


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path):
    import pandas as pd

    from curlora.experiment import preset, run, run_folder

    spec = preset("smoke", tasks=("wiki-pairs", "movie-snippets", "tweets-3class"), train_size=64)
    env = {**os.environ, "CURLORA_RESULTS": str(tmp_path / "results"), "HF_HUB_OFFLINE": "1"}
    os.environ["CURLORA_RESULTS"] = env["CURLORA_RESULTS"]
    try:
        folder = run_folder(spec)
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE], env=env)
        deadline = time.time() + 240
        while (
            not (folder / "stage0.json").exists() and proc.poll() is None and time.time() < deadline
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (folder / "stage0.json").exists() and not (folder / "results.json.gz").exists()
        resumed = run(spec, progress=False)
        whole = run(spec, progress=False, cache=False)
    finally:
        del os.environ["CURLORA_RESULTS"]
    for name in ("accuracy", "perplexity", "loss"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(resumed, name))
    pd.testing.assert_frame_equal(whole.layers, resumed.layers, rtol=1e-3)
    payload = json.loads(gzip.decompress((folder / "results.json.gz").read_bytes()))
    assert payload["spec"]["train_size"] == 64
