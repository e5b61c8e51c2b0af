"""CURLoRALinear and the SVD peer on Linear and GPT-2 Conv1D layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora import CURLoRALinear, SVDPeerLinear
from curlora.layers import weight_matrix


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
    layer = CURLoRALinear(base, rank=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(layer.C, W[:, layer.col_idx])
    assert torch.equal(layer.R, W[layer.row_idx, :])
    assert layer.C.shape == (W.shape[0], 4) and layer.R.shape == (4, W.shape[1])
    assert layer.U.shape == (4, 4) and not layer.U.any()


@pytest.mark.parametrize("kind", LAYERS)
def test_zero_u_is_identity_and_factored_forward_matches_dense(kind):
    base = LAYERS[kind]()
    x = torch.randn(3, 5, weight_matrix(base).shape[1])
    reference = base(x)
    layer = CURLoRALinear(base, rank=4, alpha=0.7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(layer(x), reference)
    with torch.no_grad():
        layer.U.normal_()
    W = weight_matrix(base).detach()
    dense = x @ (W + 0.7 * layer.C @ layer.U @ layer.R).T + base.bias
    torch.testing.assert_close(layer(x), dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.delta_weight(), 0.7 * layer.C @ layer.U @ layer.R)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("split", [1, 3])
@pytest.mark.parametrize("lead", [(), (4,), (2, 3)])
def test_forward_and_u_gradient_match_the_dense_update(alpha, split, lead):
    # The forward folds alpha into U and accumulates into the base output inside one GEMM;
    # output and U's gradient must equal the plain x (W + alpha C U R)ᵀ form for any batch shape.
    base = _conv1d(out_f=18, in_f=6)
    layer = CURLoRALinear(base, 2, alpha, split=split, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.U.normal_()
    x = torch.randn(*lead, 6)
    out = layer(x)
    assert out.shape == (*lead, 18)
    out.pow(2).sum().backward()
    grad = layer.U.grad.clone()
    layer.U.grad = None
    W = weight_matrix(base).detach()
    dense = x @ (W + layer.delta_weight()).T + base.bias
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)
    dense.pow(2).sum().backward()
    torch.testing.assert_close(grad, layer.U.grad, atol=1e-4, rtol=1e-4)


def test_forward_under_bf16_autocast():
    layer = CURLoRALinear(_linear(), rank=4, alpha=0.5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.U.normal_()
    x = torch.randn(2, 3, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("kind", LAYERS)
def test_merge_and_unmerge(kind):
    base = LAYERS[kind]()
    original = base.weight.detach().clone()
    layer = CURLoRALinear(base, rank=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.U.normal_()
    x = torch.randn(4, weight_matrix(base).shape[1])
    unmerged = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(base.weight, original, atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_only_u_gets_gradients():
    base = _linear()
    layer = CURLoRALinear(base, rank=4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.U.normal_()  # at U = 0 the gradient would still flow, but test a generic point
    layer(torch.randn(2, 10)).pow(2).sum().backward()
    assert layer.U.grad is not None and layer.U.grad.abs().sum() > 0
    assert base.weight.grad is None and base.bias.grad is None
    assert not layer.C.requires_grad and not layer.R.requires_grad
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["U"]
    assert {n for n, _ in layer.named_buffers()} == {"C", "R", "col_idx", "row_idx"}


def test_split_gives_one_cur_per_block():
    base = _conv1d(out_f=18, in_f=6)
    W = weight_matrix(base).detach().clone()
    layer = CURLoRALinear(base, rank=2, split=3, generator=torch.Generator().manual_seed(0))
    assert layer.U.shape == (3, 2, 2) and layer.col_idx.shape == (3, 2)
    for b, block in enumerate(W.chunk(3, dim=0)):
        assert torch.equal(layer.C[b], block[:, layer.col_idx[b]])
        assert torch.equal(layer.R[b], block[layer.row_idx[b], :])
    with torch.no_grad():
        layer.U.normal_()
    x = torch.randn(5, 6)
    torch.testing.assert_close(
        layer(x), x @ (W + layer.delta_weight()).T + base.bias, atol=1e-5, rtol=1e-5
    )
    blockwise = torch.cat([layer.C[b] @ layer.U[b] @ layer.R[b] for b in range(3)])
    torch.testing.assert_close(layer.delta_weight(), blockwise)


def test_seeded_sampling_is_reproducible():
    picks = [
        CURLoRALinear(_linear(40, 40), 8, generator=torch.Generator().manual_seed(s)).col_idx
        for s in (0, 0, 1)
    ]
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])


def test_svd_peer_factors_span_top_singular_space():
    base = _linear(20, 16)
    layer = SVDPeerLinear(base, rank=5)
    W = base.weight.detach().double()
    u, s, vh = torch.linalg.svd(W, full_matrices=False)
    best = (u[:, :5] * s[:5]) @ vh[:5]
    torch.testing.assert_close((layer.C @ layer.R).double(), best, atol=1e-5, rtol=1e-5)
    assert not layer.U.any() and [n for n, p in layer.named_parameters() if p.requires_grad] == [
        "U"
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_forward(dtype):
    base = _linear().to(dtype)
    layer = CURLoRALinear(base, rank=4, generator=torch.Generator().manual_seed(0))
    assert layer.U.dtype == dtype and layer.C.dtype == dtype
    x = torch.randn(2, 10, dtype=dtype)
    assert torch.equal(layer(x), base(x))
    with torch.no_grad():
        layer.U.fill_(0.1)
    assert layer(x).dtype == dtype and torch.isfinite(layer(x)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_follows_the_module():
    layer = CURLoRALinear(_linear(), rank=4, generator=torch.Generator().manual_seed(0)).cuda()
    assert layer.C.is_cuda and layer.U.is_cuda and layer.col_idx.is_cuda
    x = torch.randn(2, 10, device="cuda")
    assert torch.equal(layer(x), layer.base(x))


@pytest.mark.parametrize("rank", [0, -1, 11, 2.5, True])
def test_bad_rank_is_refused(rank):
    with pytest.raises((ValueError, TypeError), match="rank"):
        CURLoRALinear(_linear(12, 10), rank=rank)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), "1"])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        CURLoRALinear(_linear(), rank=2, alpha=alpha)


def test_unsupported_layer_is_refused():
    with pytest.raises(TypeError, match="Linear"):
        CURLoRALinear(nn.Conv2d(3, 3, 3), rank=2)
