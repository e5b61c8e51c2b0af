"""Targeting, injection, PEFT LoRA with the paper's scaling, and parameter counts."""

from __future__ import annotations

import pytest
import torch

from curlora import (
    CURLoRALayer,
    SVDPeerLayer,
    apply_adapter,
    count_parameters,
    resolve_targets,
    trainable_parameters,
)
from curlora.inject import adapter_layers
from curlora.models import load_model


def _ids(tok, n=2, length=9):
    return torch.randint(0, len(tok) - 1, (n, length), generator=torch.Generator().manual_seed(0))


def test_presets_pick_attention_projections(tiny_llama, tiny_gpt2):
    names = resolve_targets(tiny_llama[0])
    assert len(names) == 6 and all(
        n.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj") for n in names
    )
    assert resolve_targets(tiny_gpt2[0]) == [
        "transformer.h.0.attn.c_attn",
        "transformer.h.1.attn.c_attn",
    ]


def test_list_is_suffix_match_and_string_is_regex(tiny_llama):
    model = tiny_llama[0]
    assert len(resolve_targets(model, ["o_proj"])) == 2
    assert resolve_targets(model, r".*\.0\.self_attn\.q_proj") == [
        "model.layers.0.self_attn.q_proj"
    ]
    # "proj" alone is not a full path component, so it matches nothing (as in PEFT).
    with pytest.raises(ValueError, match=r"model\.layers\.\*\.self_attn\.q_proj"):
        resolve_targets(model, ["proj"])


def test_unsupported_target_type_is_refused(tiny_llama):
    with pytest.raises(TypeError, match="Linear or Conv1D"):
        resolve_targets(tiny_llama[0], ["input_layernorm"])


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("method", ["curlora", "svd", "lora"])
def test_zero_init_adapters_leave_outputs_unchanged(name, method):
    model, tok = load_model(name)
    ids = _ids(tok)
    before = model(ids).logits
    apply_adapter(model, method=method, rank=4)
    assert torch.equal(model(ids).logits, before)


def test_only_adapters_train_and_counts_split_head(tiny_llama):
    model, _ = tiny_llama
    apply_adapter(model, rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(".curlora_U.default") for n in trainable)
    counts = trainable_parameters(model)
    assert counts["adapter"] == 6 * 16 and counts["head"] == 0
    model.lm_head.weight.requires_grad_(True)  # tied with the embedding in tiny-llama
    assert trainable_parameters(model)["head"] == model.lm_head.weight.numel()
    assert sum(trainable_parameters(model).values()) == sum(p.numel() for p in model.parameters())


def test_head_only_freezes_everything(tiny_llama):
    model = apply_adapter(tiny_llama[0], method="head-only")
    assert trainable_parameters(model)["adapter"] == 0 and not any(
        p.requires_grad for p in model.parameters()
    )


def test_lora_is_peft_with_paper_scaling(tiny_gpt2):
    model, tok = tiny_gpt2
    apply_adapter(model, method="lora", rank=4, alpha=2.0)
    layers = dict(adapter_layers(model))
    assert len(layers) == 2
    layer = layers["transformer.h.0.attn.c_attn"]
    assert type(layer).__module__.startswith("peft")
    assert layer.scaling["default"] == pytest.approx(2.0)  # lora_alpha / r = alpha·r / r
    assert trainable_parameters(model)["adapter"] == 2 * 4 * (64 + 192)
    with torch.no_grad():  # the update is x·A·B·alpha, orientation handled for Conv1D
        layer.lora_B["default"].weight.normal_()
    x = torch.randn(3, 64)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = layer.get_base_layer()(x) + 2.0 * x @ A.T @ B.T
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_lora_init_is_seeded():
    weights = []
    for seed in (0, 0, 1):
        model, _ = load_model("tiny-llama")
        apply_adapter(model, method="lora", rank=2, seed=seed)
        weights.append(
            dict(adapter_layers(model))["model.layers.0.self_attn.q_proj"]
            .lora_A["default"]
            .weight.detach()
            .clone()
        )
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_fused_qkv_default_and_split(tiny_gpt2):
    model, _ = tiny_gpt2
    apply_adapter(model, rank=4)
    layer = model.transformer.h[0].attn.c_attn
    assert isinstance(layer, CURLoRALayer) and layer.curlora_U["default"].shape == (4, 4)
    split_model, _ = load_model("tiny-gpt2")
    apply_adapter(split_model, rank=4, split_fused=True, method="svd")
    layer = split_model.transformer.h[0].attn.c_attn
    assert isinstance(layer, SVDPeerLayer) and layer.svdpeer_U["default"].shape == (3, 4, 4)
    assert trainable_parameters(split_model)["adapter"] == 2 * 3 * 16


def test_same_seed_same_picks_and_different_seed_differs():
    picks = []
    for seed in (0, 0, 1):
        model, _ = load_model("tiny-llama")
        apply_adapter(model, rank=8, seed=seed)
        picks.append(torch.cat([m.curlora_col_idx["default"] for _, m in adapter_layers(model)]))
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])


def test_applying_twice_or_bad_arguments_is_refused(tiny_llama):
    model, _ = tiny_llama
    apply_adapter(model, rank=2)
    with pytest.raises(ValueError, match="already carries an adapter"):
        apply_adapter(model, rank=2)
    fresh, _ = load_model("tiny-llama")
    with pytest.raises(ValueError, match="method"):
        apply_adapter(fresh, method="bogus")
    with pytest.raises(ValueError, match=r"1 ≤ rank ≤ 32"):
        apply_adapter(fresh, rank=33)  # k_proj is 64 → 32
    with pytest.raises(ValueError, match="sampling mode"):
        apply_adapter(fresh, rank=2, sampling="random")


def test_paper_parameter_counts():
    # Paper §4.5: Mistral-7B, rank 16, Q/K/V.
    mistral = "mistralai/Mistral-7B-v0.3"
    assert count_parameters(mistral, "lora", 16) == 9_437_184
    assert count_parameters(mistral, "curlora", 16) == 24_576
    assert count_parameters(mistral, "model") == 7_248_023_552
    assert count_parameters("gpt2-large", "curlora", 16) == 36 * 256
    assert count_parameters("gpt2-large", "curlora", 16, split_fused=True) == 36 * 3 * 256
    assert count_parameters("gpt2-large", "lora", 8) == 36 * 8 * (1280 + 3840)
    assert count_parameters("gpt2", "model") == 124_439_808


def test_count_parameters_matches_a_real_model(tiny_llama):
    model, _ = tiny_llama
    assert count_parameters(model.config, "model") == sum(p.numel() for p in model.parameters())
    assert count_parameters(model.config.to_dict(), "lora", 4) == 2 * 4 * (
        (64 + 64) + 2 * (64 + 32)
    )
    with pytest.raises(ValueError, match="gpt2-large"):
        count_parameters("gpt5", "lora")
