"""Per-step metrics: the expert-load statistics and evaluation results a step record holds (runs.metrics_log
writes and reads the records)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dsmoe.routers import RouterStats

if TYPE_CHECKING:
    from dsmoe.eval import EvalResult

EVAL_KEYS = {False: ("val_loss", "val_bpb", "val_domains"), True: ("final_val", "final_val_bpb", "final_val_domains")}


def load_summary(tokens_per_expert: torch.Tensor) -> dict[str, float]:
    """Coefficient of variation and max/mean of one layer's expert load (0 and 1 when balanced)."""
    load = tokens_per_expert.double()
    mean = load.mean().clamp_min(1e-12)
    return {"cv": (load.std(unbiased=False) / mean).item(), "max_over_mean": (load.max() / mean).item()}


def sum_router_stats(per_micro_batch: list[list[RouterStats]]) -> list[RouterStats]:
    """Add the stats of each MoE layer over the micro-batches of one optimizer step."""
    return [RouterStats(sum(s.tokens_per_expert for s in layer), sum(s.dropped_tokens for s in layer))
            for layer in zip(*per_micro_batch)]


def expert_metrics(moe_layers: list[int], stats: list[RouterStats]) -> dict[str, dict]:
    return {str(layer): {"tokens_per_expert": s.tokens_per_expert.tolist(), "dropped": int(s.dropped_tokens),
                         **load_summary(s.tokens_per_expert)} for layer, s in zip(moe_layers, stats)}


def eval_record(step: int, result: EvalResult, final: bool) -> dict:
    """A validation record: loss and bits per byte, pooled and (with several domains) per domain."""
    loss_key, bpb_key, domains_key = EVAL_KEYS[final]
    record = {"step": step, loss_key: result.loss, bpb_key: result.bits_per_byte}
    if result.per_domain:
        record[domains_key] = {name: {"loss": r.loss, "bpb": r.bits_per_byte} for name, r in result.per_domain.items()}
    return record
