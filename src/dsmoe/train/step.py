"""One optimizer step over grad_accum micro-batches, with correctly weighted losses."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.model.transformer import IGNORE_INDEX
from dsmoe.routers import RouterStats
from dsmoe.train.metrics import sum_router_stats


@dataclass
class StepResult:
    loss: float
    lm_loss: float
    aux_losses: dict[str, float] = field(default_factory=dict)
    router_stats: list[RouterStats] = field(default_factory=list)


def autocast_context(dtype: str, device: torch.device):
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, grad_accum: int,
                         dtype: str) -> StepResult:
    """Forward/backward each micro-batch; gradients sum to those of the whole batch.

    The LM loss of a micro-batch is its mean over its target tokens, weighted by its share of the
    step's target tokens (exact even with ignored positions); aux losses are weighted 1/grad_accum.
    """
    total_targets = (labels != IGNORE_INDEX).sum().clamp_min(1)
    lm_total, aux_total, stats = 0.0, {}, []
    for micro_inputs, micro_labels in zip(inputs.chunk(grad_accum), labels.chunk(grad_accum)):
        with autocast_context(dtype, inputs.device):
            out = model(micro_inputs, labels=micro_labels)
        share = (micro_labels != IGNORE_INDEX).sum() / total_targets
        aux = sum(out.aux_losses.values(), torch.zeros((), device=inputs.device)) / grad_accum
        (out.lm_loss * share + aux).backward()
        lm_total += (out.lm_loss.detach() * share).item()
        for name, value in out.aux_losses.items():
            aux_total[name] = aux_total.get(name, 0.0) + value.item() / grad_accum
        stats.append(out.router_stats)
    return StepResult(lm_total + sum(aux_total.values()), lm_total, aux_total, sum_router_stats(stats))
