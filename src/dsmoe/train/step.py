"""One optimizer step over grad_accum micro-batches, with correctly weighted losses."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.model.transformer import IGNORE_INDEX
from dsmoe.routers import RouterStats
from dsmoe.routers.global_balance import global_batch_counts, uses_global_batch
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


def balance_counts(model: nn.Module, micro_inputs: tuple[torch.Tensor, ...], dtype: str):
    """balance_scope="global_batch": the routers' f_i counted over all micro-batches first; otherwise nothing."""
    if not uses_global_batch(model):
        return contextlib.nullcontext()

    def count(micro_batch: torch.Tensor) -> None:
        with autocast_context(dtype, micro_batch.device):
            model(micro_batch)
    return global_batch_counts(model, micro_inputs, count)


def accumulate_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, grad_accum: int,
                         dtype: str) -> StepResult:
    """Forward/backward each micro-batch; gradients sum to those of the whole batch.

    The LM loss of a micro-batch is its mean over its target tokens, weighted by its share of the
    step's target tokens (exact even with ignored positions); aux losses are weighted 1/grad_accum. With
    balance_scope="global_batch" a counting pre-pass first gives the routers the step's f_i (global_balance.py).
    """
    total_targets = (labels != IGNORE_INDEX).sum().clamp_min(1)
    lm_total, aux_total, stats = 0.0, {}, []
    input_chunks, label_chunks = inputs.chunk(grad_accum), labels.chunk(grad_accum)
    with balance_counts(model, input_chunks, dtype):
        for micro_inputs, micro_labels in zip(input_chunks, label_chunks):
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
