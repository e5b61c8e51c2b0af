"""Task heads: a new linear head per task on the last real token's hidden state, as the paper adds.

For the head-only control the backbone never changes, so its features are computed once per
split and the head trains on them; that is exact when the backbone has no active dropout.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def task_seed(seed: int, task: str) -> int:
    """A seed for one task's head and data order: depends on the run's seed and the task, not
    its position, so a task gets the same head whatever order it is trained in."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{task}".encode()).digest()[:4], "little")


class TaskModel(nn.Module):
    """The LM's backbone with a task head on the last real token's hidden state."""

    def __init__(self, lm: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = lm.base_model
        self.head = head

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The hidden state of each sequence's last real token (right padding, not position −1)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch.arange(len(hidden), device=hidden.device), last]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask).to(self.head.weight.dtype))


def new_head(lm: nn.Module, n_labels: int, seed: int) -> nn.Linear:
    """A fresh, seeded classification head (hidden → labels, with bias), in fp32 on the LM's device."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(lm.config.hidden_size, n_labels)
    return head.to(next(lm.parameters()).device)


def has_active_dropout(model: nn.Module) -> bool:
    """Whether training mode would make the backbone's outputs random (dropout > 0 anywhere)."""
    config = getattr(model, "config", None)
    rates = [
        getattr(config, k, 0) or 0
        for k in (
            "attention_dropout",
            "attn_pdrop",
            "resid_pdrop",
            "embd_pdrop",
            "hidden_dropout",
            "hidden_dropout_prob",
        )
    ]
    layers = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    return any(r > 0 for r in rates + layers)
