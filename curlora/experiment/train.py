"""Training one task: the adapter and the task's new head together, through ``accelerate``.

When several processes train one run (``torchrun``), each takes its share of every planned
batch and scales its loss so that the averaged gradient is the whole batch's: the run takes the
same optimisation steps as a single process. (accelerate's own loader sharding hands whole
batches of a length-grouped plan to different processes, or pads the last one with repeats.)
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from curlora.data import Collator
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.heads import TaskModel
from curlora.experiment.precision import mixed_precision
from curlora.experiment.spec import ExperimentSpec


def _optimizer(adapter: list[nn.Parameter], head: nn.Linear, spec: ExperimentSpec):

    groups = [{"params": adapter, "lr": spec.lr}] if adapter else []
    groups.append(
        {"params": list(head.parameters()), "lr": spec.lr if spec.head_lr is None else spec.head_lr}
    )
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    return optimizer


def lr_scheduler(optimizer, spec: ExperimentSpec | DomainSpec, steps: int):
    """The learning-rate schedule ``spec`` names (``schedule``, ``warmup_steps``) over ``steps``."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if spec.schedule == "constant" else spec.schedule
    return get_scheduler(
        name, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=steps
    )


def train_task(
    accelerator,
    module: TaskModel,
    encoded: list[dict],
    plan: list[list[int]],
    pad_id: int,
    spec: ExperimentSpec,
    desc: str,
    show: bool,
) -> list[float]:
    """Train the adapter and head of ``module`` on the batches of ``plan``; returns the losses."""
    adapter = [p for p in module.backbone.parameters() if p.requires_grad]
    optimizer = _optimizer(adapter, module.head, spec)
    scheduler = lr_scheduler(optimizer, spec, len(plan))
    world, rank = accelerator.num_processes, accelerator.process_index
    if any(len(idx) < world for idx in plan):
        raise ValueError(
            f"A batch of {min(map(len, plan))} examples cannot be shared by {world} processes; "
            f"use batch_size >= {world} and a training split with at least that many examples."
        )
    shares = [idx[rank::world] for idx in plan]
    loader = torch.utils.data.DataLoader(encoded, batch_sampler=shares, collate_fn=Collator(pad_id))
    module, optimizer = accelerator.prepare(module, optimizer)
    module.train()
    losses = []
    for batch, idx, share in tqdm(
        zip(loader, plan, shares, strict=True),
        total=len(plan),
        desc=desc,
        disable=not show,
        leave=False,
    ):
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with mixed_precision(accelerator.device, spec.autocast):
            logits = module(batch["input_ids"], batch["attention_mask"])
        # Gradients are averaged over processes: weigh each share by its size in the batch.
        loss = nn.functional.cross_entropy(logits.float(), batch["labels"])
        loss = loss * (len(share) * world / len(idx))
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(accelerator.reduce(loss.detach(), "mean")))
    accelerator.free_memory()
    module.eval()
    return losses


def train_head(
    head: nn.Linear,
    feats: torch.Tensor,
    labels: torch.Tensor,
    plan: list[list[int]],
    spec: ExperimentSpec,
) -> list[float]:
    """Train ``head`` alone on fixed features, batch by batch as ``train_task`` would (head-only)."""
    optimizer = _optimizer([], head, spec)
    scheduler = lr_scheduler(optimizer, spec, len(plan))
    losses = []
    for idx in plan:
        with mixed_precision(feats.device, spec.autocast):
            logits = head(feats[idx].to(head.weight.dtype))
        loss = nn.functional.cross_entropy(logits.float(), labels[idx])
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses
