"""Perplexity in windows sampled across the corpus, against the model's own loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from curlora.perplexity import corpus_ids, from_nll, perplexity, perplexity_windows, sample_windows

TEXT = "the quick brown fox jumps over the lazy dog and keeps running far away " * 40


def test_windows_are_spread_fixed_and_disjoint():
    windows = sample_windows(10_000, 512, 8)
    assert len(windows) == 8 and windows == sample_windows(10_000, 512, 8)
    assert all(e - b == 512 and b % 512 == 0 for b, e in windows)
    starts = [b for b, _ in windows]
    assert starts == sorted(starts) and len(set(starts)) == 8 and starts[-1] > 5_000
    assert len(sample_windows(10_000, 512, None)) == 19  # None: every window, the whole corpus


def test_windows_equal_the_models_own_loss(tiny_llama):
    model, tok = tiny_llama
    ids = corpus_ids(tok, TEXT)
    nll = perplexity_windows(model, tok, TEXT, max_length=64, count=3)
    assert nll.shape == (3, 2) and (nll[:, 1] == 63).all()  # 63 predicted tokens per window
    total = 0.0
    with torch.no_grad():
        for b, e in sample_windows(len(ids), 64, 3):
            x = ids[b:e][None]
            total += float(model(x, labels=x).loss) * (e - b - 1)
    assert from_nll(nll) == pytest.approx(math.exp(total / nll[:, 1].sum()), rel=1e-5)
    single = perplexity(model, tok, TEXT, mode="single", max_length=64)
    x = ids[:64][None]
    with torch.no_grad():
        assert single == pytest.approx(math.exp(float(model(x, labels=x).loss)), rel=1e-5)
    # A random byte-level model is close to uniform over its 257 tokens.
    assert 150 < from_nll(nll) < 400


def test_half_windows_give_the_noise_of_a_ratio(tiny_llama):
    model, tok = tiny_llama
    nll = perplexity_windows(model, tok, TEXT, max_length=32, count=8)
    halves = [from_nll(nll[:4]), from_nll(nll[4:])]
    assert all(np.isfinite(halves)) and from_nll(nll) == pytest.approx(
        math.exp(nll[:, 0].sum() / nll[:, 1].sum())
    )


def test_unknown_mode_and_short_text_are_refused(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(ValueError, match="windows"):
        perplexity(model, tok, TEXT, mode="strided")
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        perplexity(model, tok, "a")


def test_the_corpus_is_tokenised_once_per_process(tiny_llama, monkeypatch):
    model, tok = tiny_llama
    calls = []
    original = type(tok).__call__
    monkeypatch.setattr(
        type(tok), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    text = TEXT + " a text no other test scores"
    first = perplexity_windows(model, tok, text, max_length=64, count=2)
    again = perplexity_windows(model, tok, text, max_length=64, count=2)
    assert len(calls) == 1 and np.array_equal(first, again)
