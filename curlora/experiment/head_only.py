"""The head-only control: the backbone never changes, so each task split's features are computed
once (and shared on disk between runs), and every task head trains on them alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from curlora.data import source_fingerprint
from curlora.experiment import stages
from curlora.experiment.evaluate import features, scores
from curlora.experiment.heads import TaskModel
from curlora.experiment.precision import mixed_precision
from curlora.experiment.records import StageRecord
from curlora.experiment.train import train_head

if TYPE_CHECKING:
    from curlora.experiment.runner import _Run


def backbone_features(run: _Run, j: int, split: str) -> torch.Tensor:
    """The frozen backbone's features of one task split, shared on disk by every run (any
    order, any head-only variant) with the same model, task, sizes, seed and numerics."""
    spec = run.spec

    def compute() -> torch.Tensor:
        module = TaskModel(run.lm, nn.Identity())
        return features(module, run.encoded[j][split], spec.eval_batch_size, run.pad, spec.autocast)

    if run.folder is None:
        return compute()
    fields = (
        "model",
        "dtype",
        "autocast",
        "attention",
        "max_length",
        "train_size",
        "val_size",
        "eval_size",
        "seed",
    )
    path = stages.shared_path(
        spec,
        "features",
        fields,
        ".safetensors",
        task=source_fingerprint(spec.tasks[j]),
        split=split,
    )
    return stages.shared_tensor(path, compute).to(run.accelerator.device)


def head_only_records(run: _Run, initial: np.ndarray) -> tuple[list[StageRecord], list[nn.Linear]]:
    """Head-only: the backbone never changes, so each split's features are computed once,
    every head trains on them, and later tasks cannot change an earlier task's accuracy."""
    spec = run.spec
    heads, own = [], []
    for j in range(len(run.tasks)):
        with run.timer("features"), run.cast.active():
            feats = {
                s: backbone_features(run, j, s)
                for s in ("train", "val", "eval")
                if run.encoded[j][s]
            }
        head = run.new_head(j)
        labels = torch.tensor([int(e["label"]) for e in run.encoded[j]["train"]])
        with run.timer("train"):
            losses = train_head(
                head,
                feats["train"].to(head.weight.device),
                labels.to(head.weight.device),
                run.plan(j),
                spec,
            )
        scored = {}
        with torch.no_grad(), mixed_precision(run.accelerator.device, spec.autocast):
            for s, f in feats.items():
                if s != "train":
                    logits = head(f.to(head.weight.dtype)).float()
                    probs = torch.softmax(logits, dim=-1).cpu().numpy()
                    scored[s] = scores(probs, run.encoded[j][s])
        heads.append(head)
        own.append((losses, scored))
    records = []
    for i, task in enumerate(run.tasks):
        # Later tasks cannot change an earlier head's scores: every stage repeats them.
        accuracy = [
            run.row(i + 1, task.name, j, split, own[j][1][split])
            for split in ("eval", "val")
            for j in range(i + 1)
            if split in own[j][1]
        ]
        # The language model is untouched: its perplexity is the initial one, exactly.
        records.append(
            StageRecord.after_task(
                i + 1, task.name, accuracy, initial.tolist(), layers=[], losses=own[i][0]
            )
        )
    return records, heads
