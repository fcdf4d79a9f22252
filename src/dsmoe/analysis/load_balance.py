"""Load balance of a layer's routed experts: from a routing trace (tokens per expert, MaxVio global and per
batch, percentiles, dead experts, router entropy) and from metrics.jsonl (the same over training).

MaxVio = (max_i Load_i - mean Load) / mean Load, with Load_i the tokens expert i receives and the mean the load
under perfect balance (Wang et al. 2024, arXiv 2408.15664, Sec. 4.1): MaxVio_global over all the data,
MaxVio_batch over each training batch. 0 is perfect balance. Arrays may be np.memmap and are read in chunks.
"""

from __future__ import annotations

import math

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks
from dsmoe.analysis.specialisation import entropy

PERCENTILES = (0, 5, 25, 50, 75, 95, 100)


def expert_loads(experts_TK: np.ndarray, n_experts: int, chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[E] int64: the kept token-expert pairs each expert received (dropped pairs, -1, are not counted)."""
    load_E = np.zeros(n_experts, dtype=np.int64)
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.asarray(experts_TK[part], dtype=np.int64)
        load_E += np.bincount(experts[experts >= 0], minlength=n_experts)
    return load_E


def max_vio(load_E: np.ndarray) -> float:
    """(max load - mean load) / mean load; 0 for a layer that received nothing (nothing is imbalanced)."""
    mean = float(np.mean(load_E))
    return (float(np.max(load_E)) - mean) / mean if mean > 0 else 0.0


def load_statistics(load_E: np.ndarray) -> dict:
    """Summary of one layer's tokens per expert: cv (population std / mean), max_over_mean, min_over_mean,
    max_vio, load/mean at PERCENTILES ("p0" ... "p100"), dead (experts with no token), the entropy of the load
    distribution in nats and that entropy over log E (1: perfectly even). A layer that received nothing has
    every expert dead and zeros elsewhere."""
    load = np.asarray(load_E, dtype=np.float64)
    mean = load.mean()
    relative = load / mean if mean > 0 else np.zeros_like(load)
    load_entropy = entropy(load / load.sum()) if mean > 0 else 0.0
    return {"cv": float(relative.std()), "max_over_mean": float(relative.max()),
            "min_over_mean": float(relative.min()), "max_vio": max_vio(load),
            **{f"p{q}": float(np.percentile(relative, q)) for q in PERCENTILES},
            "dead": np.flatnonzero(load == 0).tolist(), "load_entropy": load_entropy,
            "normalised_load_entropy": load_entropy / math.log(len(load)) if len(load) > 1 else 1.0}


def batch_max_vio(experts_TK: np.ndarray, n_experts: int, tokens_per_batch: int) -> dict:
    """MaxVio_batch: MaxVio of each consecutive batch of tokens_per_batch tokens (a last partial batch counts as
    one), its mean and max over batches, and how many batches there were. One batch in memory at a time."""
    if tokens_per_batch < 1:
        raise ValueError(f"tokens_per_batch={tokens_per_batch} must be >= 1")
    per_batch = [max_vio(expert_loads(experts_TK[part], n_experts))
                 for part in token_chunks(len(experts_TK), tokens_per_batch)]
    if not per_batch:
        return {"mean": 0.0, "max": 0.0, "batches": 0, "tokens_per_batch": tokens_per_batch}
    return {"mean": float(np.mean(per_batch)), "max": float(np.max(per_batch)), "batches": len(per_batch),
            "tokens_per_batch": tokens_per_batch}


def router_entropy_summary(entropy_T: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """Mean, and the median and 95th percentile (over a histogram of 1000 bins, so memory stays bounded), of the
    per-token entropy in nats of the router's distribution over experts."""
    if len(entropy_T) == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0}
    high = max(float(np.max(entropy_T[part])) for part in token_chunks(len(entropy_T), chunk_tokens)) or 1.0
    edges = np.linspace(0.0, high, 1001)
    counts, total = np.zeros(1000, dtype=np.int64), 0.0
    for part in token_chunks(len(entropy_T), chunk_tokens):
        values = np.asarray(entropy_T[part], dtype=np.float64)
        counts += np.histogram(values, bins=edges)[0]
        total += values.sum()
    cumulative = np.cumsum(counts) / counts.sum()
    quantile = lambda q: float(edges[1:][np.searchsorted(cumulative, q)])  # noqa: E731  (upper bin edge)
    return {"mean": total / len(entropy_T), "p50": quantile(0.5), "p95": quantile(0.95)}


def load_over_training(records: list[dict]) -> dict[str, dict[str, list]]:
    """Per MoE layer, from the metrics.jsonl records that logged expert loads: step, cv, max_over_mean, max_vio
    (the step's own batch: MaxVio_batch), dead (experts with no token that step) and dropped pairs."""
    series: dict[str, dict[str, list]] = {}
    for record in records:
        for layer, logged in (record.get("experts") or {}).items():
            load = np.asarray(logged["tokens_per_expert"], dtype=np.float64)
            stats = load_statistics(load)
            row = series.setdefault(layer, {key: [] for key in ("step", "cv", "max_over_mean", "max_vio", "dead",
                                                                 "dropped")})
            for key, value in (("step", record["step"]), ("cv", stats["cv"]), ("max_over_mean", stats["max_over_mean"]),
                               ("max_vio", stats["max_vio"]), ("dead", len(stats["dead"])),
                               ("dropped", int(logged.get("dropped", 0)))):
                row[key].append(value)
    return series
