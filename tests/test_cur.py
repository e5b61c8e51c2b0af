"""The CUR math: probabilities, sampling, classical CUR."""

from __future__ import annotations

import pytest
import torch

from curlora import cur


def _with_column_norms(norms):
    W = torch.zeros(4, len(norms))
    for j, n in enumerate(norms):
        W[j % 4, j] = n
    return W


def test_paper_worked_example():
    # Paper §4.2: column norms 2, 3, 5 give p = 4/38, 9/38, 25/38 (eq. 3).
    W = _with_column_norms([2.0, 3.0, 5.0])
    p = cur.selection_probabilities(W, "columns", "norm")
    torch.testing.assert_close(p, torch.tensor([4, 9, 25], dtype=torch.float64) / 38)
    inv = cur.selection_probabilities(W, "columns", "inverse")
    expected = torch.tensor([38 / 4, 38 / 9, 38 / 25], dtype=torch.float64)
    torch.testing.assert_close(inv, expected / expected.sum())
    # 1/p = 9.5, 4.22, 1.52, normalised: the smallest column becomes the likeliest.
    torch.testing.assert_close(
        inv, torch.tensor([0.6233, 0.2770, 0.0997], dtype=torch.float64), atol=1e-4, rtol=0
    )


def test_rows_axis_matches_columns_of_transpose():
    W = torch.randn(7, 5)
    for mode in cur.PROBABILITY_MODES:
        torch.testing.assert_close(
            cur.selection_probabilities(W, "rows", mode),
            cur.selection_probabilities(W.T, "columns", mode),
        )
    assert cur.selection_probabilities(W, 1).shape == (5,)
    assert cur.selection_probabilities(W, 0).shape == (7,)


def test_zero_norm_columns_get_zero_probability():
    W = _with_column_norms([0.0, 1.0, 2.0])
    for mode in ("inverse", "inverse_eps", "norm"):
        p = cur.selection_probabilities(W, "columns", mode)
        assert torch.isfinite(p).all() and p[0] == 0 and abs(float(p.sum()) - 1) < 1e-12
    assert (cur.selection_probabilities(W, "columns", "uniform") == 1 / 3).all()


def test_sampling_is_seeded_and_differs_across_seeds():
    p = cur.selection_probabilities(torch.randn(64, 256), "columns")
    a = cur.sample_indices(p, 16, torch.Generator().manual_seed(1))
    b = cur.sample_indices(p, 16, torch.Generator().manual_seed(1))
    c = cur.sample_indices(p, 16, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.long and int(a.min()) >= 0 and int(a.max()) < 256


def test_without_replacement_gives_distinct_indices():
    p = cur.selection_probabilities(torch.randn(8, 20), "columns")
    idx = cur.sample_indices(p, 20, torch.Generator().manual_seed(0), replace=False)
    assert sorted(idx.tolist()) == list(range(20))


def test_lowest_picks_smallest_norms():
    W = _with_column_norms([5.0, 1.0, 3.0, 0.5])
    assert cur.select_indices(W, "columns", 2, "lowest").tolist() == [3, 1]


def test_inverse_eps_is_near_uniform_on_wide_matrices():
    # With 4096 columns every p_j ≈ 1/4096 ≪ 0.001, so 1/(p + 0.001) barely varies: the reference
    # code samples almost uniformly, unlike eq. 4.
    W = torch.randn(64, 4096, generator=torch.Generator().manual_seed(0))
    W = W * torch.linspace(0.2, 3.0, 4096)  # column norms spread over a factor of 15
    tv = {
        m: cur.total_variation_from_uniform(cur.selection_probabilities(W, "columns", m))
        for m in cur.PROBABILITY_MODES
    }
    assert tv["uniform"] == pytest.approx(0.0, abs=1e-12)
    # Measured: inverse 0.59, norm 0.36, inverse_eps 0.067.
    assert tv["inverse"] > 0.5 and tv["inverse_eps"] < 0.1
    assert tv["inverse_eps"] < tv["inverse"] / 5


def test_classical_cur_is_exact_at_full_rank_and_error_shrinks():
    g = torch.Generator().manual_seed(0)
    low_rank = torch.randn(30, 4, generator=g) @ torch.randn(4, 20, generator=g)
    assert cur.reconstruction_error(low_rank, 8, "norm", torch.Generator().manual_seed(0)) < 1e-6
    W = torch.randn(40, 40, generator=g)
    errs = [
        cur.reconstruction_error(W, r, "norm", torch.Generator().manual_seed(0)) for r in (4, 40)
    ]
    assert errs[1] < errs[0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight_is_refused(bad):
    W = torch.randn(4, 4)
    W[1, 2] = bad
    with pytest.raises(ValueError, match="NaN/Inf"):
        cur.selection_probabilities(W, "columns")


def test_zero_weight_and_unknown_mode_are_refused():
    with pytest.raises(ValueError, match="all zeros"):
        cur.selection_probabilities(torch.zeros(3, 3), "columns")
    with pytest.raises(ValueError, match="inverse_eps"):
        cur.selection_probabilities(torch.ones(3, 3), "columns", "inverted")
    with pytest.raises(ValueError, match="axis"):
        cur.selection_probabilities(torch.ones(3, 3), "diagonal")
