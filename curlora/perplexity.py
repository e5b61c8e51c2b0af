"""Perplexity of a model's LM head on a held-out corpus, in windows sampled across all of it.

``windows`` (default): the corpus is tokenised once and cut into consecutive windows of
``max_length`` tokens; ``count`` of them, chosen uniformly at random with a fixed seed (the same
windows for every run, so ratios are paired), are scored, each token predicted from the tokens
before it in its window. The per-window log-likelihoods are kept, so the ratio can be re-read on
halves of the windows or bootstrapped: that is how its noise is measured. ``single``: the paper's
reference code, one pass over the first ``max_length`` tokens.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: The windows are the same for every run and seed: perplexity ratios compare like with like.
WINDOW_SEED = 0


_TOKENISED: dict[tuple, torch.Tensor] = {}


def corpus_ids(tokenizer, text: str) -> torch.Tensor:
    """Token ids of ``text``, tokenised once per process for a given tokenizer and text."""
    key = (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), hash(text), len(text))
    if key not in _TOKENISED:
        if len(_TOKENISED) >= 8:
            _TOKENISED.pop(next(iter(_TOKENISED)))
        _TOKENISED[key] = tokenizer(text, return_tensors="pt").input_ids[0]
    return _TOKENISED[key]


def sample_windows(n_tokens: int, length: int, count: int | None) -> list[tuple[int, int]]:
    """(start, end) of ``count`` non-overlapping windows of ``length`` tokens spread over the
    corpus (all of them when ``count`` is None or exceeds what fits), in corpus order."""
    slots = max(n_tokens // length, 1)
    chosen = np.arange(slots)
    if count is not None and count < slots:
        chosen = np.sort(np.random.default_rng(WINDOW_SEED).choice(slots, count, replace=False))
    return [(int(s) * length, min(int(s) * length + length, n_tokens)) for s in chosen]


#: Tokens whose LM-head logits are formed at once: a vocabulary-sized fp32 row per token is
#: the largest tensor of a perplexity pass, so it is never built for a whole window batch.
LOGIT_CHUNK = 256


@torch.no_grad()
def window_nll(
    model,
    ids: torch.Tensor,
    windows: list[tuple[int, int]],
    pad_token_id: int,
    batch_size: int = 4,
) -> np.ndarray:
    """Per window: (summed negative log-likelihood, number of predicted tokens), shape (n, 2)."""
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    out = []
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        width = max(e - b for b, e in group)
        batch = torch.full((len(group), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(batch)
        for row, (b, e) in enumerate(group):
            batch[row, : e - b] = ids[b:e]
            mask[row, : e - b] = 1
        hidden = model.base_model(
            input_ids=batch.to(device), attention_mask=mask.to(device)
        ).last_hidden_state[:, :-1]
        targets = batch[:, 1:].to(device)
        keep = mask[:, 1:].bool().to(device)
        nll = torch.zeros(targets.shape, dtype=torch.float64, device=device)
        flat_h, flat_t, flat_nll = (
            hidden.reshape(-1, hidden.shape[-1]),
            targets.reshape(-1),
            nll.view(-1),
        )
        for c in range(0, len(flat_t), LOGIT_CHUNK):
            logits = head(flat_h[c : c + LOGIT_CHUNK]).float()
            picked = logits.gather(1, flat_t[c : c + LOGIT_CHUNK, None])[:, 0]
            flat_nll[c : c + LOGIT_CHUNK] = (torch.logsumexp(logits, dim=-1) - picked).double()
        nll = nll * keep
        out.extend(zip(nll.sum(1).tolist(), keep.sum(1).tolist(), strict=True))
    return np.asarray(out, dtype=float)


def from_nll(nll: np.ndarray) -> float:
    """Perplexity from per-window (summed NLL, token count) rows."""
    nll = np.asarray(nll, dtype=float).reshape(-1, 2)
    return math.exp(nll[:, 0].sum() / nll[:, 1].sum())


def perplexity_windows(
    model,
    tokenizer,
    text: str,
    mode: str = "windows",
    max_length: int = 512,
    count: int | None = 8,
    batch_size: int = 4,
) -> np.ndarray:
    """Per-window (NLL, tokens) of ``model`` on ``text`` (see the module docstring for the modes)."""
    if mode not in ("windows", "single"):
        raise ValueError(f"Unknown perplexity mode {mode!r}; choose 'windows' or 'single'.")
    ids = corpus_ids(tokenizer, text)
    if len(ids) < 2:
        raise ValueError(
            "The perplexity text tokenizes to fewer than 2 tokens; give a longer corpus."
        )
    windows = (
        [(0, min(max_length, len(ids)))]
        if mode == "single"
        else sample_windows(len(ids), max_length, count)
    )
    return window_nll(model, ids, windows, tokenizer.pad_token_id or 0, batch_size)


def perplexity(model, tokenizer, text: str, **kw) -> float:
    """Perplexity of ``model``'s LM head on ``text`` (arguments as ``perplexity_windows``)."""
    return from_nll(perplexity_windows(model, tokenizer, text, **kw))
