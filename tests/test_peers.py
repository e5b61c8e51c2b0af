"""The knowledge-preserving peers PEFT ships or builds on: DoRA, PiSSA, MiLoRA-style and middle
singular bands, CorDA's knowledge-preserved mode, OSF — and full fine-tuning of the adapted matrices, the upper anchor — each
checked against PEFT and against what it promises."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from curlora import adapter_config, analysis, apply_adapter, count_parameters, peft_model
from curlora.experiment import preset, run
from curlora.methods import REGISTRY, method_of_layer
from curlora.models import load_model
from curlora.svd_init import band_start
from curlora.targets import weight_matrix

PEERS = ("dora", "pissa", "milora", "middle", "corda", "osf", "full")
RESIDUAL = ("pissa", "milora", "middle", "corda")


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))


def _base():
    return load_model("tiny-llama", seed=0)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[5, 17, 42, 9, 77, 3, 120, 8]])


def _extra(method: str) -> dict:
    """What a method needs beyond the common settings: CorDA's calibration text (token ids)."""
    if method != "corda":
        return {}
    return {
        "calibration": torch.randint(0, 200, (8, 32), generator=torch.Generator().manual_seed(0))
    }


def _train_a_little(model, seed=1):
    """Move every trainable tensor as a training step would (the same move for every copy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda np: np[0]):
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("method", PEERS)
def test_trainable_parameters_equal_peft_count(method):
    model, _ = _base()
    counted = count_parameters(model, method, rank=4)
    wrapped = peft_model(model, method, rank=4, **_extra(method))
    assert wrapped.get_nb_trainable_parameters()[0] == counted
    assert counted == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)


@pytest.mark.parametrize("method", PEERS)
def test_output_at_initialisation_is_the_base_models(method):
    base, _ = _base()
    expected = _logits(base, IDS)
    model, _ = _base()
    apply_adapter(model, method, rank=4, **_extra(method))
    assert torch.allclose(_logits(model, IDS), expected, atol=1e-4)
    for _, layer in analysis.adapter_layers(model):
        assert method_of_layer(layer).name == method
        # ΔW is read from the original W: zero before training, whatever the base now holds.
        assert analysis.delta_weight(layer).abs().max() < 1e-4


@pytest.mark.parametrize("method", PEERS)
def test_delta_weight_is_what_the_layer_adds_to_the_original_weight(method):
    model, _ = _base()
    originals = {
        n: weight_matrix(m).detach().clone()
        for n, m in model.named_modules()
        if n.endswith(("q_proj", "k_proj", "v_proj"))
    }
    apply_adapter(model, method, rank=4, **_extra(method))
    _train_a_little(model)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    for name, layer in analysis.adapter_layers(model):
        with torch.no_grad():
            # The layer's output minus the original weight's is x·ΔWᵀ.
            added = layer(x) - x @ originals[name].T
        assert torch.allclose(added, x @ analysis.delta_weight(layer).T, atol=1e-4), name
        assert torch.allclose(analysis.original_weight(layer), originals[name], atol=1e-5)
        # Singular values from the thin factors: those of the dense ΔW (the rest are zero).
        sv = analysis.delta_singular_values(layer)
        dense = torch.linalg.svdvals(analysis.delta_weight(layer).double())
        assert torch.allclose(sv[: len(dense)], dense[: len(sv)], atol=1e-5)
        assert all(dense[len(sv) :] < 1e-5)


def test_the_principal_band_is_pissa():
    pissa, _ = _base()
    apply_adapter(pissa, "pissa", rank=4)
    ours, _ = _base()
    apply_adapter(ours, "milora", rank=4)
    a = next(m for m in pissa.modules() if isinstance(m, LoraLayer))
    b = next(m for m in ours.modules() if isinstance(m, LoraLayer))
    S = torch.linalg.svdvals(analysis.original_weight(a).double())

    def adapter_values(layer):
        BA = (
            layer.scaling["default"]
            * layer.lora_B["default"].weight
            @ layer.lora_A["default"].weight
        )
        return torch.linalg.svdvals(BA.double())[:4]

    # PiSSA's adapter holds the top four singular values, the MiLoRA-style one the bottom four.
    assert torch.allclose(adapter_values(a), S[:4], rtol=1e-4)
    assert torch.allclose(adapter_values(b), S[-4:], rtol=1e-3, atol=1e-6)
    assert band_start("middle", 4, 64) == 30
    with pytest.raises(ValueError, match="principal, minor, middle"):
        band_start("edge", 4, 64)


@pytest.mark.parametrize("method", ["dora", "osf", "full"])
def test_save_and_load_give_identical_outputs(method, tmp_path):
    model, _ = _base()
    wrapped = peft_model(model, method, rank=4)
    _train_a_little(wrapped)
    expected = _logits(wrapped, IDS)
    wrapped.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(_base()[0], tmp_path)
    assert torch.allclose(_logits(loaded, IDS), expected, atol=1e-5)


@pytest.mark.parametrize("method", RESIDUAL)
def test_residual_inits_save_as_plain_lora_on_the_original_model(method, tmp_path):
    # PEFT's conversion for PiSSA-like inits: save the initial adapter, then save the trained
    # one as a rank-2r LoRA that loads on the unmodified base model.
    model, _ = _base()
    wrapped = peft_model(model, method, rank=4, **_extra(method))
    wrapped.peft_config["default"].init_lora_weights = True
    wrapped.save_pretrained(tmp_path / "initial")
    _train_a_little(wrapped)
    expected = _logits(wrapped, IDS)
    wrapped.save_pretrained(
        tmp_path / "trained", path_initial_model_for_weight_conversion=str(tmp_path / "initial")
    )
    loaded = PeftModel.from_pretrained(_base()[0], tmp_path / "trained")
    assert torch.allclose(_logits(loaded, IDS), expected, atol=1e-4)


@pytest.mark.parametrize("method", PEERS)
def test_each_peer_runs_in_the_engine(method):
    results = run(preset("smoke", method=method, tasks=("movie-snippets",)), progress=False)
    assert results.summary()["adapter_params"] == count_parameters(
        load_model("tiny-llama")[0], method, rank=4
    )
    assert len(results.layers) and results.loss["loss"].notna().all()


def test_every_peer_says_how_it_changes_the_base_weights():
    for name in PEERS:
        entry = REGISTRY[name]
        assert entry.role == "peer" and entry.base_weights
    assert all(REGISTRY[m].base_weights != "kept" for m in RESIDUAL)
    # A config alone (as get_peft_model takes it) carries PiSSA's init but not the bands'.
    model, _ = _base()
    assert adapter_config(model, "pissa", rank=4).init_lora_weights == "pissa"
    # CorDA reads what the model knows from calibration text, and says so when it has none.
    with pytest.raises(ValueError, match="calibration= token ids"):
        apply_adapter(model, "corda", rank=4)


def test_an_untagged_dora_layer_is_read_as_dora():
    model, _ = _base()
    wrapped = get_peft_model(model, adapter_config(model, "dora", rank=2))
    layer = next(m for m in wrapped.modules() if isinstance(m, LoraLayer))
    assert method_of_layer(layer).name == "dora"


def test_full_fine_tuning_trains_every_entry_and_merges_into_w():
    base, _ = _base()
    qkv = [
        weight_matrix(m).numel()
        for n, m in base.named_modules()
        if n.endswith(("q_proj", "k_proj", "v_proj"))
    ]
    # Every entry of each adapted matrix trains, and nothing else.
    assert count_parameters(base, "full") == sum(qkv)
    model, _ = _base()
    wrapped = peft_model(model, "full")
    q = model.model.layers[0].self_attn.q_proj
    assert q.full_delta["default"].shape == weight_matrix(q).shape
    _train_a_little(wrapped)
    expected = _logits(wrapped, IDS)
    merged = wrapped.merge_and_unload()
    assert torch.allclose(_logits(merged, IDS), expected, atol=1e-5)
