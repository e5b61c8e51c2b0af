"""Saving and loading adapters: exact round trips and clear refusals."""

from __future__ import annotations

import pytest
import torch

from curlora import apply_adapter, load_adapter, save_adapter
from curlora.inject import adapter_layers
from curlora.models import load_model


def _trained(name="tiny-llama", method="curlora", seed=0, **kw):
    model, tok = load_model(name, seed=seed)
    apply_adapter(model, method=method, rank=4, seed=3, **kw)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g))
    return model, tok


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("method", ["curlora", "svd", "lora"])
def test_round_trip_is_bitwise_exact(tmp_path, name, method):
    model, tok = _trained(name, method, split_fused=(method == "svd"))
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    expected = model(ids).logits
    path = save_adapter(model, tmp_path / "a.safetensors")
    fresh, _ = load_model(name, seed=0)
    load_adapter(fresh, path)
    assert torch.equal(fresh(ids).logits, expected)
    if method == "curlora":
        for (_, a), (_, b) in zip(adapter_layers(model), adapter_layers(fresh), strict=True):
            assert torch.equal(a.C, b.C) and torch.equal(a.R, b.R) and torch.equal(a.U, b.U)
    # Loading into a model that already carries the same adapter layout only copies U.
    load_adapter(model, path)
    assert torch.equal(model(ids).logits, expected)


def test_file_holds_u_and_indices_only(tmp_path):
    from safetensors import safe_open

    model, _ = _trained()
    path = save_adapter(model, tmp_path / "a.safetensors")
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert len(keys) == 6 * 3 and {k.rsplit(".", 1)[1] for k in keys} == {"U", "col_idx", "row_idx"}
    assert meta["format"] == "curlora-adapter" and '"rank": 4' in meta["config"]


def test_different_base_model_is_refused(tmp_path):
    model, _ = _trained(seed=0)
    path = save_adapter(model, tmp_path / "a.safetensors")
    other, _ = load_model("tiny-llama", seed=1)
    with pytest.raises(ValueError, match="different base weights"):
        load_adapter(other, path)
    gpt2, _ = load_model("tiny-gpt2")
    with pytest.raises(ValueError, match="different architecture"):
        load_adapter(gpt2, path)


def test_different_adapter_layout_is_refused(tmp_path):
    model, _ = _trained()
    path = save_adapter(model, tmp_path / "a.safetensors")
    rank8, _ = load_model("tiny-llama")
    apply_adapter(rank8, rank=8)
    with pytest.raises(ValueError, match="rank: model 8 vs file 4"):
        load_adapter(rank8, path)


def test_damaged_or_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    model, _ = _trained()
    path = save_adapter(model, tmp_path / "a.safetensors")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    text = tmp_path / "x.safetensors"
    text.write_text("not an adapter")
    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    fresh, _ = load_model("tiny-llama")
    for bad, msg in [(truncated, "truncated"), (text, "truncated"), (foreign, "not a curlora")]:
        with pytest.raises(ValueError, match=msg):
            load_adapter(fresh, bad)
    with pytest.raises(FileNotFoundError):
        load_adapter(fresh, tmp_path / "missing.safetensors")


def test_save_without_adapter_or_while_merged_is_refused(tmp_path):
    plain, _ = load_model("tiny-llama")
    with pytest.raises(ValueError, match="apply_adapter"):
        save_adapter(plain, tmp_path / "a.safetensors")
    model, _ = _trained()
    next(layer for _, layer in adapter_layers(model)).merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        save_adapter(model, tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()
