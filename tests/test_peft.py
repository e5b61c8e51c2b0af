"""CURLoRA and the SVD peer as PEFT methods: get_peft_model, save/load, merge, named adapters, Trainer.

These tests also guard the string-``peft_type`` route into PEFT's mapping tables: a PEFT
release that closes it fails here first.
"""

from __future__ import annotations

import json

import peft
import pytest
import torch
from packaging.version import Version
from peft import PeftConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open

import curlora
from curlora import CURLoRAConfig, SVDPeerConfig, apply_adapter, count_parameters
from curlora.inject import adapter_layers
from curlora.models import load_model

CONFIGS = {
    "curlora": lambda: CURLoRAConfig(r=4, seed=3),
    "curlora-split": lambda: CURLoRAConfig(r=4, split_fused=True, sampling="norm"),
    "svd": lambda: SVDPeerConfig(r=4, alpha=0.5),
}


def _ids(n=2, length=7):
    return torch.randint(0, 256, (n, length), generator=torch.Generator().manual_seed(0))


def _trained(name: str, config: PeftConfig, seed: int = 0, dtype=torch.float32):
    """A PEFT model whose trainable tensors hold random values (as if trained)."""
    model = get_peft_model(load_model(name, seed=seed, dtype=dtype)[0], config)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_peft_version_and_registration():
    assert Version(peft.__version__) >= Version("0.21")
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    assert PEFT_TYPE_TO_CONFIG_MAPPING["CURLORA"] is CURLoRAConfig
    assert PEFT_TYPE_TO_CONFIG_MAPPING["SVDPEER"] is SVDPeerConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING["CURLORA"].prefix == "curlora_"
    curlora.tuners.register()  # idempotent: importing twice changes nothing
    assert CURLoRAConfig(r=2).peft_type == "CURLORA"


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("kind", CONFIGS)
def test_save_and_from_pretrained_round_trip_is_bitwise(tmp_path, name, kind):
    if kind == "curlora-split" and name != "tiny-gpt2":
        pytest.skip("split_fused is about GPT-2's fused c_attn")
    model = _trained(name, CONFIGS[kind]())
    expected = model(_ids()).logits
    model.save_pretrained(tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert PeftConfig.from_pretrained(tmp_path).__class__ is type(CONFIGS[kind]())
    loaded = PeftModel.from_pretrained(load_model(name, seed=0)[0], tmp_path)
    assert torch.equal(loaded(_ids()).logits, expected)
    for (_, a), (_, b) in zip(adapter_layers(model), adapter_layers(loaded), strict=True):
        for part in ("C", "U", "R"):
            assert torch.equal(a.part(part)["default"], b.part(part)["default"])


def test_saved_folder_holds_u_indices_and_fingerprint_not_c_and_r(tmp_path):
    _trained("tiny-llama", CURLoRAConfig(r=4)).save_pretrained(tmp_path / "cur")
    _trained("tiny-llama", SVDPeerConfig(r=4)).save_pretrained(tmp_path / "svd")
    with safe_open(str(tmp_path / "cur" / "adapter_model.safetensors"), "pt") as f:
        kinds = {k.rsplit(".", 1)[1] for k in f.keys()}
        assert len(list(f.keys())) == 6 * 5
    assert kinds == {
        "curlora_U",
        "curlora_col_idx",
        "curlora_row_idx",
        "curlora_fingerprint",
        "curlora_settings",
    }
    # The SVD peer saves its factors: a basis rebuilt elsewhere could differ in sign.
    with safe_open(str(tmp_path / "svd" / "adapter_model.safetensors"), "pt") as f:
        assert {k.rsplit(".", 1)[1] for k in f.keys()} == {
            f"svdpeer_{p}" for p in ("U", "C", "R", "fingerprint", "settings")
        }
    saved = json.loads((tmp_path / "cur" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "CURLORA" and saved["r"] == 4 and saved["sampling"] == "inverse"


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_print_trainable_parameters_agrees_with_count_parameters(name, capsys):
    model, _ = load_model(name)
    config = model.config
    for kind, cfg in (("curlora", CURLoRAConfig(r=4)), ("svd", SVDPeerConfig(r=4))):
        peft_model = get_peft_model(load_model(name)[0], cfg)
        trainable, total = peft_model.get_nb_trainable_parameters()
        assert trainable == count_parameters(config, kind, 4)
        peft_model.print_trainable_parameters()
        assert f"trainable params: {trainable:,}" in capsys.readouterr().out


@pytest.mark.parametrize("kind", CONFIGS)
def test_merge_and_unload_equals_the_adapted_forward(kind):
    model = _trained("tiny-gpt2", CONFIGS[kind]())
    adapted = model(_ids()).logits
    merged = model.merge_and_unload()
    assert not list(adapter_layers(merged))
    torch.testing.assert_close(merged(_ids()).logits, adapted, atol=1e-5, rtol=1e-5)


def test_two_named_adapters_switch_and_disable():
    base_logits = load_model("tiny-llama")[0](_ids()).logits
    model = _trained("tiny-llama", CURLoRAConfig(r=4, seed=0))
    first = model(_ids()).logits
    model.add_adapter("second", CURLoRAConfig(r=2, seed=1, sampling="uniform"))
    assert model(_ids()).logits.equal(first)  # the new adapter is not active yet
    model.set_adapter("second")
    assert torch.equal(model(_ids()).logits, base_logits)  # its U starts at zero
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            layer.curlora_U["second"].normal_()
    second = model(_ids()).logits
    assert not torch.allclose(second, first)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".curlora_U.second" in n for n in trainable)
    model.set_adapter("default")
    assert torch.equal(model(_ids()).logits, first)
    with model.disable_adapter():
        assert torch.equal(model(_ids()).logits, base_logits)
    assert torch.equal(model(_ids()).logits, first)


def test_loading_refuses_other_base_weights(tmp_path):
    _trained("tiny-llama", CURLoRAConfig(r=4), seed=0).save_pretrained(tmp_path)
    other = load_model("tiny-llama", seed=1)[0]
    with pytest.raises(ValueError, match="trained on different base weights"):
        PeftModel.from_pretrained(other, tmp_path)
    with pytest.raises(ValueError, match="target_modules"):
        PeftModel.from_pretrained(load_model("tiny-gpt2")[0], tmp_path)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (CURLoRAConfig(r=2), "r: saved 4, here 2"),
        (CURLoRAConfig(r=4, alpha=2.0), "alpha: saved 1.0, here 2.0"),
        (CURLoRAConfig(r=4, sampling="norm"), "sampling: saved 'inverse', here 'norm'"),
    ],
)
def test_loading_with_other_settings_says_which(tmp_path, override, reason):
    _trained("tiny-llama", CURLoRAConfig(r=4)).save_pretrained(tmp_path)
    base = load_model("tiny-llama")[0]
    with pytest.raises(ValueError, match=reason):
        PeftModel.from_pretrained(base, tmp_path, config=override)


def test_state_dict_without_fingerprint_is_refused():
    model = _trained("tiny-llama", CURLoRAConfig(r=4))
    state = get_peft_model_state_dict(model)
    state = {k: v for k, v in state.items() if "fingerprint" not in k}
    fresh = get_peft_model(load_model("tiny-llama")[0], CURLoRAConfig(r=4))
    with pytest.raises(ValueError, match="no base-weight fingerprint"):
        peft.set_peft_model_state_dict(fresh, state)


def test_saved_indices_are_used_even_with_another_seed(tmp_path):
    model = _trained("tiny-llama", CURLoRAConfig(r=4, seed=0))
    expected = model(_ids()).logits
    model.save_pretrained(tmp_path)
    # The seed only decides fresh picks; a saved adapter's own indices rebuild its C and R.
    loaded = PeftModel.from_pretrained(
        load_model("tiny-llama")[0], tmp_path, config=CURLoRAConfig(r=4, seed=9)
    )
    assert torch.equal(loaded(_ids()).logits, expected)


@pytest.mark.parametrize(
    ("saved", "loaded"), [(torch.float32, torch.bfloat16), (torch.float64, torch.float32)]
)
def test_svd_peer_loads_its_saved_factors_across_dtypes(tmp_path, saved, loaded):
    model = _trained("tiny-llama", SVDPeerConfig(r=4), dtype=saved)
    model.save_pretrained(tmp_path)
    target = PeftModel.from_pretrained(load_model("tiny-llama", dtype=loaded)[0], tmp_path)
    for (_, a), (_, b) in zip(adapter_layers(model), adapter_layers(target), strict=True):
        for part in ("C", "R"):
            # Exactly the saved factors (PEFT keeps adapter tensors in fp32 on a bf16 model):
            # no SVD is recomputed in the other dtype, so no singular vector can flip sign.
            mine = b.part(part)["default"]
            assert torch.equal(mine, a.part(part)["default"].to(mine.dtype))
        torch.testing.assert_close(
            b.get_delta_weight("default").double(),
            a.get_delta_weight("default").double(),
            atol=0.05 if loaded == torch.bfloat16 else 1e-5,
            rtol=0.02 if loaded == torch.bfloat16 else 1e-5,
        )


def test_apply_adapter_is_the_same_peft_path():
    model, _ = load_model("tiny-llama")
    apply_adapter(model, "curlora", rank=4, seed=3)
    reference = get_peft_model(load_model("tiny-llama")[0], CURLoRAConfig(r=4, seed=3))
    assert model.peft_config["default"].peft_type == "CURLORA"
    mine = get_peft_model_state_dict(model)
    theirs = get_peft_model_state_dict(reference)
    assert mine.keys() == {k.removeprefix("base_model.model.") for k in theirs}
    for k, v in mine.items():
        assert torch.equal(v, theirs[f"base_model.model.{k}"])


def test_trainer_runs_and_only_u_changes(tmp_path):
    from transformers import Trainer, TrainingArguments

    base, tok = load_model("tiny-llama")
    model = get_peft_model(base, CURLoRAConfig(r=4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    texts = ["CURLoRA keeps C and R fixed.", "Only the small core U is trained."] * 4
    rows = [{"input_ids": ids, "labels": ids} for ids in tok(texts)["input_ids"]]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=1,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    Trainer(model=model, args=args, train_dataset=rows).train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".curlora_U.default" in n for n in changed)
    assert len(changed) == 6  # q/k/v in two layers


@pytest.mark.integration
def test_peft_calls_on_smollm2(tmp_path):
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model = get_peft_model(load_model("smollm2-135m")[0], CURLoRAConfig(r=16))
    trainable, _ = model.get_nb_trainable_parameters()
    assert trainable == 30 * 3 * 16 * 16 == count_parameters(model.get_base_model(), "curlora", 16)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            layer.curlora_U["default"].normal_(std=1e-3)
    expected = model(ids).logits
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(load_model("smollm2-135m")[0], tmp_path)
    assert torch.equal(loaded(ids).logits, expected)
    merged = loaded.merge_and_unload()
    torch.testing.assert_close(merged(ids).logits, expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_an_adapter_loads_onto_the_same_checkpoint_in_lower_precision(tmp_path, dtype):
    _trained("tiny-llama", CURLoRAConfig(r=4)).save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(load_model("tiny-llama", dtype=dtype)[0], tmp_path)
    assert next(adapter_layers(loaded))[1].curlora_col_idx["default"].numel() == 4


def test_state_dict_without_settings_is_refused():
    state = get_peft_model_state_dict(_trained("tiny-llama", CURLoRAConfig(r=4)))
    state = {k: v for k, v in state.items() if "settings" not in k}
    fresh = get_peft_model(load_model("tiny-llama", seed=1)[0], CURLoRAConfig(r=4))
    with pytest.raises(ValueError, match="no settings"):
        peft.set_peft_model_state_dict(fresh, state)


def test_all_linear_shorthand_adapts_every_linear_layer_but_the_head():
    model = get_peft_model(
        load_model("tiny-llama")[0], CURLoRAConfig(r=2, target_modules="all-linear")
    )
    names = [n for n, _ in adapter_layers(model)]
    assert len(names) == 2 * 7 and not any("lm_head" in n for n in names)
    assert isinstance(model.peft_config["default"].target_modules, list)


def test_reloading_base_weights_of_a_merged_model_is_not_refused():
    model = _trained("tiny-llama", CURLoRAConfig(r=4))
    model.merge_adapter()
    base = {k: v for k, v in model.state_dict().items() if "curlora_" not in k}
    model.load_state_dict(base, strict=False)  # no adapter keys: nothing to rebuild


def test_fingerprint_sees_every_entry_and_ignores_rounding():
    from curlora.tuners.layer import SKETCH_TOLERANCE, sketch_difference, weight_fingerprint

    W = torch.randn(300, 200, generator=torch.Generator().manual_seed(0))
    edited = W.clone()
    edited[250:, 150:] += 0.5  # far from the first rows and columns
    rounded = W.to(torch.bfloat16).float()
    base = weight_fingerprint(W)
    assert sketch_difference(base, weight_fingerprint(rounded)) < SKETCH_TOLERANCE
    assert sketch_difference(base, weight_fingerprint(edited)) > 10 * SKETCH_TOLERANCE
