"""Evaluating a task head: predictions and last-token features over a split, in sorted batches."""

from __future__ import annotations

import numpy as np
import torch

from curlora.data import Collator
from curlora.experiment.batches import sorted_batches
from curlora.experiment.heads import TaskModel
from curlora.experiment.precision import mixed_precision


@torch.no_grad()
def features(
    module: TaskModel, encoded: list[dict], batch_size: int, pad_id: int, autocast: str | None
) -> torch.Tensor:
    """Last-real-token hidden states of every example (in the given order), shape (n, hidden)."""
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    collate = Collator(pad_id)
    out: list[torch.Tensor | None] = [None] * len(encoded)
    for idx in sorted_batches([len(e["input_ids"]) for e in encoded], batch_size):
        batch = collate([encoded[i] for i in idx])
        with mixed_precision(device, autocast):
            feats = module.features(
                batch["input_ids"].to(device), batch["attention_mask"].to(device)
            )
        for i, f in zip(idx, feats, strict=True):
            out[i] = f
    module.train(was_training)
    return torch.stack(out)


@torch.no_grad()
def probabilities(
    module: TaskModel, encoded: list[dict], batch_size: int, pad_id: int, autocast: str | None
) -> np.ndarray:
    """The head's class probabilities for every example (in the given order), shape (n, labels)."""
    device = next(module.parameters()).device
    feats = features(module, encoded, batch_size, pad_id, autocast)
    with mixed_precision(device, autocast):
        logits = module.head(feats.to(module.head.weight.dtype))
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


@torch.no_grad()
def predict(
    module: TaskModel, encoded: list[dict], batch_size: int, pad_id: int, autocast: str | None
) -> np.ndarray:
    """The predicted label of every example (in the given order)."""
    return probabilities(module, encoded, batch_size, pad_id, autocast).argmax(-1)


def labels(encoded: list[dict]) -> np.ndarray:
    """The true labels of ``encoded`` examples."""
    return np.array([int(e["label"]) for e in encoded])


def correct(predictions: np.ndarray, encoded: list[dict]) -> np.ndarray:
    """Per-example correctness (bool) of ``predictions``."""
    return predictions == labels(encoded)


#: The smallest probability a log is taken of: a head certain and wrong costs −log(1e-12) ≈ 27.6
#: nats, not infinity, so one example cannot make a mean undefined.
FLOOR = 1e-12


def scores(probs: np.ndarray, encoded: list[dict]) -> dict[str, np.ndarray]:
    """Per-example correctness, negative log-likelihood (nats) and Brier score of ``probs``.

    NLL and Brier move continuously with the head's confidence, where accuracy over 100
    examples moves in steps of 1%: they are the plasticity axes that can tell close rates apart.
    """
    y = labels(encoded)
    truth = np.eye(probs.shape[1])[y]
    return {
        "correct": probs.argmax(-1) == y,
        "nll": -np.log(np.maximum(probs[np.arange(len(y)), y], FLOOR)),
        "brier": ((probs - truth) ** 2).sum(-1),
    }
