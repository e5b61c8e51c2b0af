"""Measures of learning and forgetting: continual-learning metrics, confidence intervals, perplexity.

Definitions follow ``shared/metrics.md``: R[i][j] is accuracy on task j after training through
task i (NaN where task j has no head yet).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"Expected a square T×T accuracy matrix, got shape {R.shape}.")
    return R


def average_accuracy(R) -> float:
    """ACC = (1/T) Σ_j R[T][j]: mean accuracy over all tasks after the last one."""
    R = _matrix(R)
    return float(R[-1].mean())


def backward_transfer(R) -> float:
    """BWT = (1/(T−1)) Σ_{j<T} (R[T][j] − R[j][j]) (Lopez-Paz & Ranzato 2017); negative = forgetting.

    Averages over the T−1 earlier tasks (GEM's released code divides by T with a zero term).
    NaN for a single task.
    """
    R = _matrix(R)
    T = len(R)
    if T < 2:
        return math.nan
    return float(np.mean([R[-1, j] - R[j, j] for j in range(T - 1)]))


def forgetting(R) -> float:
    """Forgetting = mean over j<T of max_{l<T} R[l][j] − R[T][j] (Chaudhry et al. 2018, A-GEM)."""
    R = _matrix(R)
    T = len(R)
    if T < 2:
        return math.nan
    return float(np.mean([np.nanmax(R[j : T - 1, j]) - R[-1, j] for j in range(T - 1)]))


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN half-width for n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in values if not (isinstance(v, float) and math.isnan(v))], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


@torch.no_grad()
def perplexity(
    model,
    tokenizer,
    text: str,
    mode: str = "strided",
    max_length: int | None = None,
    stride: int | None = None,
    max_tokens: int | None = None,
    batch_size: int = 4,
) -> float:
    """Perplexity of ``model``'s LM head on ``text``.

    ``strided`` (default): the sliding-window method of the transformers guide "Perplexity of
    fixed-length models": windows of ``max_length`` tokens moved by ``stride``, each token
    scored once with up to ``max_length − stride`` tokens of context. ``single``: the paper's
    reference code, one pass over the text truncated to ``max_length`` tokens.
    """
    if mode not in ("strided", "single"):
        raise ValueError(f"Unknown perplexity mode {mode!r}; choose 'strided' or 'single'.")
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    max_length = max_length or _context_length(model)
    if mode == "single":
        ids = ids[:max_length]
    stride = min(stride or max_length // 2, max_length) if mode == "strided" else max_length
    if len(ids) < 2:
        raise ValueError(
            "The perplexity text tokenizes to fewer than 2 tokens; give a longer corpus."
        )
    device = next(model.parameters()).device
    windows, prev_end = [], 0
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        windows.append((begin, end, end - prev_end))  # score only the tokens not scored before
        prev_end = end
        if end == len(ids):
            break
    nll, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        width = max(e - b for b, e, _ in group)
        batch = torch.full((len(group), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(batch)
        targets = torch.full_like(batch, -100)
        for row, (b, e, n_new) in enumerate(group):
            batch[row, : e - b] = ids[b:e]
            mask[row, : e - b] = 1
            first = max(e - b - n_new, 1)  # the first token of the text has no prediction
            targets[row, first : e - b] = ids[b + first : e]
        logits = model(input_ids=batch.to(device), attention_mask=mask.to(device)).logits.float()
        shift_t = targets[:, 1:].to(device)
        nll += float(
            F.cross_entropy(
                logits[:, :-1].flatten(0, 1), shift_t.flatten(), reduction="sum", ignore_index=-100
            )
        )
        count += int((shift_t != -100).sum())
    return math.exp(nll / count)


def _context_length(model) -> int:
    config = model.config
    for key in ("max_position_embeddings", "n_positions"):
        if getattr(config, key, None):
            return min(int(getattr(config, key)), 1024)
    return 1024
