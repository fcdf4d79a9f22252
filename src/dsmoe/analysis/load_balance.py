"""Load balance of a layer's routed experts: from a routing trace (tokens per expert, MaxVio global and per
batch, percentiles, dead experts, router entropy) and from metrics.jsonl (the same over training).

MaxVio = (max_i Load_i - mean Load) / mean Load, with Load_i the token-expert pairs expert i receives and the
mean the load under perfect balance (Wang et al. 2024, "Auxiliary-Loss-Free Load Balancing Strategy for
Mixture-of-Experts", arXiv 2408.15664, Sec. 4.1): MaxVio_global over all the data, MaxVio_batch over each
training batch. 0 is perfect balance. Dropped pairs (expert -1) are no load. Arrays may be np.memmap and are
read in chunks of chunk_tokens tokens; results are floats, ints and lists (JSON-able).
"""

from __future__ import annotations

import math

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks
from dsmoe.analysis.specialisation import entropy

PERCENTILES = (0, 5, 25, 50, 75, 95, 100)
ENTROPY_BINS = 1000  # router_entropy_summary's quantiles are exact to within max entropy / ENTROPY_BINS
OVER_TRAINING = ("step", "cv", "max_over_mean", "max_vio", "dead", "dropped")


def expert_loads(experts_TK: np.ndarray, n_experts: int, chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[E] int64: the kept token-expert pairs each expert received (dropped pairs, -1, are not counted)."""
    load_E = np.zeros(n_experts, dtype=np.int64)
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.asarray(experts_TK[part], dtype=np.int64)
        load_E += np.bincount(experts[experts >= 0], minlength=n_experts)
    return load_E


def max_vio(load_E: np.ndarray) -> float:
    """MaxVio (Wang et al. 2024, Sec. 4.1): (max load - mean load) / mean load; 0 for a layer that received
    nothing (nothing is imbalanced)."""
    mean = float(np.mean(load_E))
    return (float(np.max(load_E)) - mean) / mean if mean > 0 else 0.0


def load_statistics(load_E: np.ndarray) -> dict:
    """Summary of one layer's tokens per expert: cv (population std / mean), max_over_mean, min_over_mean,
    max_vio, load/mean at PERCENTILES ("p0" ... "p100", numpy's linear interpolation), dead (indices of experts
    with no pair), load_entropy (of load / total load, nats) and normalised_load_entropy (over log E; 1:
    perfectly even, 1 too for E = 1). A layer that received nothing is not an error: every expert is dead and
    every other number is 0 (no nan in the JSON)."""
    load = np.asarray(load_E, dtype=np.float64)
    if load.ndim != 1 or len(load) == 0:
        raise ValueError(f"load_E of shape {load.shape}: expected one load per expert, [n_experts] with n_experts >= 1")
    mean = load.mean()
    relative = load / mean if mean > 0 else np.zeros_like(load)
    load_entropy = entropy(load / load.sum()) if mean > 0 else 0.0
    return {"cv": float(relative.std()), "max_over_mean": float(relative.max()),
            "min_over_mean": float(relative.min()), "max_vio": max_vio(load),
            **{f"p{q}": float(np.percentile(relative, q)) for q in PERCENTILES},
            "dead": np.flatnonzero(load == 0).tolist(), "load_entropy": load_entropy,
            "normalised_load_entropy": load_entropy / math.log(len(load)) if len(load) > 1 else float(mean > 0)}


def batch_max_vio(experts_TK: np.ndarray, n_experts: int, tokens_per_batch: int,
                  chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """MaxVio_batch (Wang et al. 2024, Sec. 4.1): MaxVio of each consecutive whole batch of tokens_per_batch
    tokens (the run's batch_size * seq_len); returns its mean and max over the batches, batches (their number),
    tokens_per_batch and tokens_left_out: a last partial batch is left out, as its fewer tokens would inflate
    MaxVio by sampling noise alone. With no whole batch, mean and max are None. Reads at most
    min(tokens_per_batch, chunk_tokens) tokens at a time."""
    if tokens_per_batch < 1:
        raise ValueError(f"tokens_per_batch={tokens_per_batch} must be >= 1")
    n_batches = len(experts_TK) // tokens_per_batch
    total, highest = 0.0, 0.0
    for part in token_chunks(n_batches * tokens_per_batch, tokens_per_batch):
        value = max_vio(expert_loads(experts_TK[part], n_experts, chunk_tokens))
        total, highest = total + value, max(highest, value)
    return {"mean": total / n_batches if n_batches else None, "max": highest if n_batches else None,
            "batches": n_batches, "tokens_per_batch": tokens_per_batch,
            "tokens_left_out": len(experts_TK) - n_batches * tokens_per_batch}


def histogram_quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The q-quantile of values binned by a histogram, interpolated linearly inside the bin that holds it."""
    cumulative = np.cumsum(counts)
    rank = q * cumulative[-1]
    index = min(int(np.searchsorted(cumulative, rank)), len(counts) - 1)
    below = cumulative[index] - counts[index]
    inside = (rank - below) / counts[index] if counts[index] else 0.0
    return float(edges[index] + inside * (edges[index + 1] - edges[index]))


def router_entropy_summary(entropy_T: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """Mean, median (p50) and 95th percentile (p95) of the per-token entropy, in nats, of the router's
    distribution over all experts (the trace's entropy_{l}.npy). The mean is exact; the quantiles come from a
    histogram of ENTROPY_BINS bins over [0, max], so memory stays bounded. All 0 for no tokens."""
    if len(entropy_T) == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0}
    parts = list(token_chunks(len(entropy_T), chunk_tokens))
    low = min(float(np.min(entropy_T[part])) for part in parts)
    high = max(float(np.max(entropy_T[part])) for part in parts)
    edges = np.linspace(0.0, high or 1.0, ENTROPY_BINS + 1)  # all zero: any range holds them
    counts, total = np.zeros(ENTROPY_BINS, dtype=np.int64), 0.0
    for part in parts:
        values = np.asarray(entropy_T[part], dtype=np.float64)
        counts += np.histogram(np.clip(values, 0.0, high), bins=edges)[0]
        total += float(values.sum())
    quantile = {q: min(max(histogram_quantile(counts, edges, q), low), high) for q in (0.5, 0.95)}  # inside the data
    return {"mean": total / len(entropy_T), "p50": quantile[0.5], "p95": quantile[0.95]}


def load_over_training(records: list[dict]) -> dict[str, dict[str, list]]:
    """{layer: {series: [one value per logged step]}} from metrics.jsonl records (read_metrics), skipping those
    without "experts": step, and recomputed from that step's tokens_per_expert, cv, max_over_mean, max_vio (the
    step's own batch: MaxVio_batch = max_over_mean - 1), dead (how many experts got no token) and dropped."""
    series: dict[str, dict[str, list]] = {}
    for record in records:
        for layer, logged in (record.get("experts") or {}).items():
            stats = load_statistics(logged["tokens_per_expert"])
            values = (record["step"], stats["cv"], stats["max_over_mean"], stats["max_vio"], len(stats["dead"]),
                      int(logged.get("dropped", 0)))
            row = series.setdefault(layer, {key: [] for key in OVER_TRAINING})
            for key, value in zip(OVER_TRAINING, values):
                row[key].append(value)
    return series
