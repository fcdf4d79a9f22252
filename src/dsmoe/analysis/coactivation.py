"""Which experts a token's top-k puts together, from a layer's routing trace arrays (OLMoE, Muennighoff et
al. 2024, Sec. 5: expert co-activation). Dropped pairs (expert -1) are ignored; inputs may be np.memmap and
are read in chunks."""

from __future__ import annotations

import math

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks


def coactivation_counts(experts_TK: np.ndarray, n_experts: int, chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[E, E] int64, symmetric: entry (i, j), i != j, counts the tokens that kept both experts i and j; the
    diagonal counts the tokens that kept expert i (its activations)."""
    counts = np.zeros(n_experts * n_experts, dtype=np.int64)
    top_k = experts_TK.shape[1]
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.asarray(experts_TK[part], dtype=np.int64)
        for a in range(top_k):
            for b in range(top_k):
                kept = (experts[:, a] >= 0) & (experts[:, b] >= 0)
                counts += np.bincount(experts[kept, a] * n_experts + experts[kept, b], minlength=counts.size)
    return counts.reshape(n_experts, n_experts)


def coactivation_ratio(counts_EE: np.ndarray) -> np.ndarray:
    """[E, E]: OLMoE's co-activation N_{i,j} / N_i, of the tokens that chose expert i (row) the share that also
    chose j; the diagonal is 0 and a row of a never-chosen expert is 0."""
    activations_E1 = np.diag(counts_EE)[:, None]
    off_diagonal = counts_EE - np.diag(np.diag(counts_EE))
    return np.divide(off_diagonal, activations_E1, out=np.zeros(counts_EE.shape), where=activations_E1 > 0)


def distinct_combinations(experts_TK: np.ndarray, n_experts: int, chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """How many distinct sets of K experts the tokens that kept all K pairs used, against the C(E, K) possible
    (tokens with a dropped pair are left out: their sets have fewer than K experts)."""
    top_k = experts_TK.shape[1]
    seen: set[bytes] = set()
    n_tokens = 0
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.sort(np.asarray(experts_TK[part], dtype=np.int16), axis=1)
        full = experts[(experts >= 0).all(axis=1)]
        n_tokens += len(full)
        seen.update(row.tobytes() for row in np.unique(full, axis=0))
    return {"distinct": len(seen), "possible": math.comb(n_experts, top_k), "tokens": n_tokens}
