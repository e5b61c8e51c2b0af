"""The CURLoRA and SVD-peer layers on Linear and GPT-2 Conv1D weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora import CURLoRAConfig, CURLoRALayer, SVDPeerConfig, SVDPeerLayer
from curlora.targets import weight_matrix


def cur_layer(base, rank, alpha=1.0, split=1, seed=0, **kw):
    """A CURLoRA layer on ``base`` (a fused Q/K/V name when split into 3 blocks)."""
    config = CURLoRAConfig(r=rank, alpha=alpha, seed=seed, split_fused=split > 1, **kw)
    return CURLoRALayer(base, "default", config, "attn.c_attn" if split > 1 else "w")


def parts(layer):
    """(C, U, R, col_idx, row_idx) of the default adapter."""
    return (
        layer.curlora_C["default"],
        layer.curlora_U["default"],
        layer.curlora_R["default"],
        layer.curlora_col_idx["default"],
        layer.curlora_row_idx["default"],
    )


def _linear(out_f=12, in_f=10, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f)


def _conv1d(out_f=12, in_f=12, seed=0):
    torch.manual_seed(seed)
    layer = Conv1D(out_f, in_f)
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    return layer


LAYERS = {"linear": _linear, "conv1d_square": _conv1d, "conv1d_wide": lambda: _conv1d(18, 6)}


@pytest.mark.parametrize("kind", LAYERS)
def test_c_and_r_are_actual_columns_and_rows(kind):
    base = LAYERS[kind]()
    W = weight_matrix(base).detach().clone()
    layer = cur_layer(base, 4)
    C, U, R, cols, rows = parts(layer)
    assert torch.equal(C, W[:, cols]) and torch.equal(R, W[rows, :])
    assert C.shape == (W.shape[0], 4) and R.shape == (4, W.shape[1])
    assert U.shape == (4, 4) and not U.any()


@pytest.mark.parametrize("kind", LAYERS)
def test_zero_u_is_identity_and_factored_forward_matches_dense(kind):
    base = LAYERS[kind]()
    x = torch.randn(3, 5, weight_matrix(base).shape[1])
    reference = base(x)
    layer = cur_layer(base, 4, alpha=0.7)
    assert torch.equal(layer(x), reference)
    C, U, R, _, _ = parts(layer)
    with torch.no_grad():
        U.normal_()
    W = weight_matrix(base).detach()
    dense = x @ (W + 0.7 * C @ U @ R).T + base.bias
    torch.testing.assert_close(layer(x), dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.delta_matrix("default"), 0.7 * C @ U @ R)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("split", [1, 3])
@pytest.mark.parametrize("lead", [(), (4,), (2, 3)])
def test_forward_and_u_gradient_match_the_dense_update(alpha, split, lead):
    # The forward folds alpha into U and accumulates into the base output inside one GEMM;
    # output and U's gradient must equal the plain x (W + alpha C U R)ᵀ form for any batch shape.
    base = _conv1d(out_f=18, in_f=6)
    layer = cur_layer(base, 2, alpha, split=split)
    U = layer.curlora_U["default"]
    with torch.no_grad():
        U.normal_()
    x = torch.randn(*lead, 6)
    out = layer(x)
    assert out.shape == (*lead, 18)
    out.pow(2).sum().backward()
    grad = U.grad.clone()
    U.grad = None
    W = weight_matrix(base).detach()
    dense = x @ (W + layer.delta_matrix("default")).T + base.bias
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)
    dense.pow(2).sum().backward()
    torch.testing.assert_close(grad, U.grad, atol=1e-4, rtol=1e-4)


def test_forward_under_bf16_autocast():
    layer = cur_layer(_linear(), 4, alpha=0.5)
    with torch.no_grad():
        layer.curlora_U["default"].normal_()
    x = torch.randn(2, 3, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("kind", LAYERS)
def test_merge_and_unmerge(kind):
    base = LAYERS[kind]()
    original = base.weight.detach().clone()
    layer = cur_layer(base, 3)
    with torch.no_grad():
        layer.curlora_U["default"].normal_()
    x = torch.randn(4, weight_matrix(base).shape[1])
    unmerged = layer(x)
    layer.merge()
    assert layer.merged_adapters == ["default"]
    torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
    with pytest.warns(UserWarning, match="already merged"):
        layer.merge()  # PEFT's contract: merging twice is a warned no-op
    assert layer.merged_adapters == ["default"]
    layer.unmerge()
    torch.testing.assert_close(base.weight, original, atol=1e-6, rtol=0)
    assert not layer.merged


def test_only_u_gets_gradients():
    base = _linear()
    base.requires_grad_(False)  # PEFT freezes the base model around its tuner layers
    layer = cur_layer(base, 4)
    C, U, R, _, _ = parts(layer)
    with torch.no_grad():
        U.normal_()  # at U = 0 the gradient would still flow, but test a generic point
    layer(torch.randn(2, 10)).pow(2).sum().backward()
    assert U.grad is not None and U.grad.abs().sum() > 0
    assert base.weight.grad is None and base.bias.grad is None
    assert not C.requires_grad and not R.requires_grad
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["curlora_U.default"]
    # C and R are rebuilt from the base weights, so only indices and checks are saved with U.
    assert {k for k in layer.state_dict() if not k.startswith("base_layer.")} == {
        f"curlora_{p}.default" for p in ("U", "col_idx", "row_idx", "fingerprint", "settings")
    }


def test_split_gives_one_cur_per_block():
    base = _conv1d(out_f=18, in_f=6)
    W = weight_matrix(base).detach().clone()
    layer = cur_layer(base, 2, split=3)
    C, U, R, cols, rows = parts(layer)
    assert U.shape == (3, 2, 2) and cols.shape == (3, 2)
    for b, block in enumerate(W.chunk(3, dim=0)):
        assert torch.equal(C[b], block[:, cols[b]])
        assert torch.equal(R[b], block[rows[b], :])
    with torch.no_grad():
        U.normal_()
    x = torch.randn(5, 6)
    delta = layer.delta_matrix("default")
    torch.testing.assert_close(layer(x), x @ (W + delta).T + base.bias, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(delta, torch.cat([C[b] @ U[b] @ R[b] for b in range(3)]))


def test_seeded_sampling_is_reproducible():
    picks = [parts(cur_layer(_linear(40, 40), 8, seed=s))[3] for s in (0, 0, 1)]
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])
    # Each layer draws from its own name's generator, so its picks do not depend on the
    # order in which layers are built.
    other = CURLoRALayer(_linear(40, 40), "default", CURLoRAConfig(r=8), "another.layer")
    assert not torch.equal(picks[0], other.curlora_col_idx["default"])


def test_svd_peer_factors_span_top_singular_space():
    base = _linear(20, 16)
    base.requires_grad_(False)
    layer = SVDPeerLayer(base, "default", SVDPeerConfig(r=5), "w")
    C, U, R = (layer.svdpeer_C["default"], layer.svdpeer_U["default"], layer.svdpeer_R["default"])
    W = base.weight.detach().double()
    u, s, vh = torch.linalg.svd(W, full_matrices=False)
    best = (u[:, :5] * s[:5]) @ vh[:5]
    torch.testing.assert_close((C @ R).double(), best, atol=1e-5, rtol=1e-5)
    assert not U.any()
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["svdpeer_U.default"]
    # Signs are canonical: the largest entry of each column of C is positive.
    assert (C.gather(0, C.abs().argmax(0, keepdim=True)) > 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_forward(dtype):
    base = _linear().to(dtype)
    layer = cur_layer(base, 4)
    C, U, _, _, _ = parts(layer)
    assert U.dtype == dtype and C.dtype == dtype
    x = torch.randn(2, 10, dtype=dtype)
    assert torch.equal(layer(x), base(x))
    with torch.no_grad():
        U.fill_(0.1)
    assert layer(x).dtype == dtype and torch.isfinite(layer(x)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_follows_the_module():
    layer = cur_layer(_linear(), 4).cuda()
    assert all(t.is_cuda for t in parts(layer))
    x = torch.randn(2, 10, device="cuda")
    assert torch.equal(layer(x), layer.base_layer(x))


@pytest.mark.parametrize("rank", [0, -1, 11, 2.5, True])
def test_bad_rank_is_refused(rank):
    with pytest.raises((ValueError, TypeError), match="rank"):
        cur_layer(_linear(12, 10), rank)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), "1"])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        cur_layer(_linear(), 2, alpha=alpha)


def test_unsupported_layer_is_refused():
    with pytest.raises(TypeError, match="Linear"):
        cur_layer(nn.Conv2d(3, 3, 3), 2)


@pytest.mark.parametrize("kind", LAYERS)
def test_get_delta_weight_is_in_the_base_weights_layout(kind):
    base = LAYERS[kind]()
    layer = cur_layer(base, 3)
    with torch.no_grad():
        layer.curlora_U["default"].normal_()
    delta = layer.get_delta_weight("default")
    assert delta.shape == base.weight.shape  # in × out for GPT-2 Conv1D, as PEFT's LoRA
    before = base.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(base.weight - before, delta)
    layer.unmerge()


def test_no_adapter_is_added_while_another_is_merged():
    base = _linear()
    layer = cur_layer(base, 3)
    with torch.no_grad():
        layer.curlora_U["default"].normal_()
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge_adapter"):
        layer.update_layer("second", CURLoRAConfig(r=2), "w")
