"""One optimizer step over grad_accum micro-batches, with correctly weighted losses."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.model.transformer import IGNORE_INDEX
from dsmoe.routers import RouterStats
from dsmoe.routers.global_balance import global_batch_counts, uses_global_batch
from dsmoe.routers.step_updates import ReduceSum
from dsmoe.runtime.devices import autocast_context
from dsmoe.train.metrics import sum_router_stats


@dataclass
class StepResult:
    loss: float
    lm_loss: float
    aux_losses: dict[str, float] = field(default_factory=dict)
    router_stats: list[RouterStats] = field(default_factory=list)


def balance_counts(model: nn.Module, micro_inputs: list[torch.Tensor], dtype: str, reduce_sum: ReduceSum | None):
    """balance_scope="global_batch": the routers' f_i counted over all micro-batches (of all ranks) first;
    otherwise nothing."""
    if not uses_global_batch(model):
        return contextlib.nullcontext()

    def count(micro_batch: torch.Tensor) -> None:
        with autocast_context(dtype, micro_batch.device):
            model(micro_batch)
    return global_batch_counts(model, micro_inputs, count, reduce_sum)


def rank_micro_batches(inputs: torch.Tensor, labels: torch.Tensor, grad_accum: int, world_size: int, rank: int
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's part of each of the step's grad_accum micro-batches: micro-batch g split into world_size
    near-equal parts (the first ranks one sequence more when it does not divide), rank r taking part r."""
    return [(micro_inputs.tensor_split(world_size)[rank], micro_labels.tensor_split(world_size)[rank])
            for micro_inputs, micro_labels in zip(inputs.tensor_split(grad_accum), labels.tensor_split(grad_accum))]


def accumulate_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, grad_accum: int,
                         dtype: str, world_size: int = 1, rank: int = 0,
                         reduce_sum: ReduceSum | None = None) -> StepResult:
    """Forward/backward each micro-batch; gradients sum to those of the whole batch.

    The LM loss of a micro-batch is its mean over its target tokens, weighted by its share of the
    step's target tokens (exact even with ignored positions); aux losses are weighted 1/grad_accum. With
    balance_scope="global_batch" a counting pre-pass first gives the routers the step's f_i (global_balance.py).

    Over world_size ranks (every rank given the whole step batch `inputs`), rank `rank` runs its part of each
    micro-batch (rank_micro_batches), each part one micro-batch of grad_accum * world_size: its LM loss weighted
    by its share of the whole step's targets, its aux losses 1/(grad_accum * world_size). Gradients summed over
    the ranks (parallelize sums them) are then exactly those of one process running those grad_accum *
    world_size micro-batches; `reduce_sum` sums the reported losses and router stats over the ranks.
    """
    total_targets = (labels != IGNORE_INDEX).sum().clamp_min(1)
    micro_batches = rank_micro_batches(inputs, labels, grad_accum, world_size, rank)
    return accumulate_micro_batches(model, micro_batches, total_targets, grad_accum * world_size, dtype, reduce_sum)


def accumulate_micro_batches(model: nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
                             total_targets: torch.Tensor, n_micro: int, dtype: str,
                             reduce_sum: ReduceSum | None = None) -> StepResult:
    """Forward/backward these (inputs, labels) micro-batches of a step of `n_micro` (over all ranks) holding
    `total_targets` targets: LM losses weighted by their share of the targets, aux losses 1/n_micro."""
    lm_total, aux_total, stats = torch.zeros((), dtype=torch.float64, device="cpu"), {}, []  # reported on the host
    with balance_counts(model, [micro_inputs for micro_inputs, _ in micro_batches], dtype, reduce_sum):
        for micro_inputs, micro_labels in micro_batches:
            with autocast_context(dtype, micro_inputs.device):
                out = model(micro_inputs, labels=micro_labels)
            share = (micro_labels != IGNORE_INDEX).sum() / total_targets
            aux = sum(out.aux_losses.values(), torch.zeros((), device=micro_inputs.device)) / n_micro
            (out.lm_loss * share + aux).backward()
            lm_total += (out.lm_loss.detach() * share).double().cpu()
            for name, value in out.aux_losses.items():
                aux_total[name] = aux_total.get(name, 0.0) + value.detach().double().cpu() / n_micro
            stats.append(out.router_stats)
    return summed_result(lm_total, aux_total, sum_router_stats(stats), reduce_sum)


def summed_result(lm_total: torch.Tensor, aux_total: dict[str, torch.Tensor], stats: list[RouterStats],
                  reduce_sum: ReduceSum | None) -> StepResult:
    """The step's losses and router stats as floats, summed over the ranks first when `reduce_sum` is given."""
    if reduce_sum is not None:
        values = torch.stack([lm_total, *aux_total.values()])
        reduce_sum(values)
        lm_total, aux_total = values[0], dict(zip(aux_total, values[1:]))
        for layer in stats:
            reduce_sum(layer.tokens_per_expert)
            reduce_sum(layer.dropped_tokens)
    lm, aux = float(lm_total), {name: float(value) for name, value in aux_total.items()}
    return StepResult(lm + sum(aux.values()), lm, aux, stats)
