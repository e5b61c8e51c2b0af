"""Methods, sampling rules and arms: one registry entry each, read by every consumer."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from curlora import analysis, apply_adapter, count_parameters, cur
from curlora.arms import Arm
from curlora.counting import trainable_parameters
from curlora.experiment import preset, run
from curlora.experiment.design import study_design
from curlora.experiment.profiles import PROFILES
from curlora.methods import REGISTRY, AdapterSettings, Method, method_of_layer
from curlora.plan import load_plan
from curlora.tuners import CURLoRAConfig


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))


def test_arm_names_round_trip_and_read_as_before():
    for name, display, role in [
        ("curlora", "CURLoRA", "subject"),
        ("curlora-norm", "CURLoRA (norm sampling)", "ablation"),
        ("lora", "LoRA", "peer"),
        ("lora-r1", "LoRA r1", "peer"),
        ("svd", "the SVD peer", "ablation"),
        ("head-only", "head-only", "control"),
    ]:
        arm = Arm.parse(name)
        assert (arm.name, arm.display, arm.role) == (name, display, role)
    assert Arm.parse("lora-r1").changes() == {"method": "lora", "rank": 1}
    assert Arm.parse("curlora-lowest").changes() == {"method": "curlora", "sampling": "lowest"}
    with pytest.raises(ValueError, match="unknown method 'bogus'"):
        Arm.parse("bogus")
    with pytest.raises(ValueError, match="neither a rank"):
        Arm.parse("lora-norm")


def test_no_two_arms_of_a_published_study_share_a_colour():
    studies = [
        (params or {}).get("arms", [])
        for profile in ("evidence", "cpu")
        for params in PROFILES[profile].values()
    ]
    studies.append(list(load_plan(protocol="domain").design["rates"]))
    for arms in studies:
        colors = [Arm.parse(a).color for a in arms]
        assert len(set(colors)) == len(colors), (arms, colors)


def test_every_shipped_method_and_rule_is_complete():
    for m in REGISTRY.values():
        if m.config is not None:
            assert m.trainable and m.layer and m.factors, m.name
    for rule in cur.SAMPLING_RULES.values():
        assert (rule.weights is None) != (rule.pick is None), rule.name


def _rslora(model: nn.Module, s: AdapterSettings) -> LoraConfig:
    """PEFT's rank-stabilised LoRA (scaling alpha/√r): a method the suite does not ship."""
    return LoraConfig(
        r=s.rank, lora_alpha=s.alpha * s.rank, use_rslora=True, target_modules=s.names
    )


def test_a_new_method_is_one_registry_entry(monkeypatch, tiny_llama):
    monkeypatch.setitem(
        REGISTRY,
        "rslora",
        Method(
            "rslora",
            "rsLoRA",
            "C6",
            "peer",
            config=_rslora,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=REGISTRY["lora"].factors,
            splits_fused=False,
        ),
    )
    arm = Arm.parse("rslora")
    assert (arm.display, arm.color, arm.role) == ("rsLoRA", "C6", "peer")
    model, _ = tiny_llama
    counted = count_parameters(model, "rslora", rank=4)
    apply_adapter(model, "rslora", rank=4)
    assert trainable_parameters(model)["adapter"] == counted
    # The engine runs it from a spec, and a design names it as an arm.
    results = run(preset("smoke", method="rslora", tasks=("movie-snippets",)), progress=False)
    assert results.summary()["adapter_params"] > 0 and len(results.layers)
    design = study_design("smoke", arms=["curlora", "rslora", "head-only"], lrs={"*": [1e-2]})
    assert {s.method for s in design.specs()} == {"curlora", "rslora", "head-only"}


def test_a_new_sampling_rule_is_one_registry_entry(monkeypatch, tiny_llama):
    def inverse_sqrt(p, nonzero):
        return torch.where(nonzero, torch.where(nonzero, p, 1.0).rsqrt(), 0.0)

    monkeypatch.setitem(
        cur.SAMPLING_RULES,
        "inverse_sqrt",
        cur.SamplingRule("inverse_sqrt", "1/√p", "C6", weights=inverse_sqrt),
    )
    W = torch.tensor([[2.0, 3.0, 5.0]])  # the paper's worked example: p = 4/38, 9/38, 25/38
    probs = cur.selection_probabilities(W, "columns", "inverse_sqrt")
    expected = torch.tensor([1 / 2, 1 / 3, 1 / 5], dtype=torch.float64)
    assert torch.allclose(probs, expected / expected.sum())
    assert Arm.parse("curlora-inverse_sqrt").color == "C6"
    assert CURLoRAConfig(r=2, sampling="inverse_sqrt").sampling == "inverse_sqrt"
    model, _ = tiny_llama
    apply_adapter(model, "curlora", rank=2, sampling="inverse_sqrt")
    assert preset("smoke", sampling="inverse_sqrt").sampling == "inverse_sqrt"


def test_layers_of_no_registered_method_raise(tiny_llama):
    with pytest.raises(TypeError, match="Linear is not a layer of a registered method"):
        method_of_layer(nn.Linear(4, 4))
    model, _ = tiny_llama
    peft_model = get_peft_model(
        model, LoraConfig(r=2, use_dora=True, target_modules=["q_proj"], lora_dropout=0.0)
    )
    layer = next(m for m in peft_model.modules() if isinstance(m, LoraLayer))
    # DoRA is registered: its magnitude is read, not ignored as plain LoRA would.
    assert method_of_layer(layer).name == "dora"
    # A LoRA variant no entry recognises (an unknown tag) raises rather than being misread.
    layer.curlora_method = {"default": "lora"}
    layer.use_dora = {"default": True}
    assert method_of_layer(layer).name == "lora"  # an explicit tag is trusted
    del layer.curlora_method
    monkeypatched = dict(REGISTRY)
    try:
        REGISTRY.pop("dora")
        with pytest.raises(TypeError, match="not a layer of a registered method"):
            analysis.delta_factors(layer)
    finally:
        REGISTRY.clear()
        REGISTRY.update(monkeypatched)


def test_lora_delta_is_read_through_its_entry(tiny_llama):
    model, _ = tiny_llama
    inject_adapter_in_model(
        LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False), model
    )
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    name = layer.active_adapters[0]
    expected = layer.scaling[name] * layer.lora_B[name].weight @ layer.lora_A[name].weight
    assert torch.allclose(analysis.delta_weight(layer), expected, atol=1e-6)
