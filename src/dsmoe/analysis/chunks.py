"""Token chunks of a routing trace: arrays may be np.memmap over tens of millions of tokens, so statistics
read them a slice at a time and only the slice is ever in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK_TOKENS = 1 << 20


def token_chunks(n_tokens: int, chunk_tokens: int = CHUNK_TOKENS) -> Iterator[slice]:
    """Consecutive slices covering range(n_tokens), each at most chunk_tokens long."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens={chunk_tokens} must be >= 1")
    for start in range(0, n_tokens, chunk_tokens):
        yield slice(start, min(start + chunk_tokens, n_tokens))


def pair_counts(experts_TK: np.ndarray, rows_T: np.ndarray, n_rows: int, n_experts: int,
                chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[n_rows, n_experts] int64: how many kept token-expert pairs have each (row label, expert); the row label
    of a pair is its token's (a domain, a token id). Dropped pairs (expert -1) are not counted."""
    counts = np.zeros(n_rows * n_experts, dtype=np.int64)
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.asarray(experts_TK[part], dtype=np.int64)
        rows = np.broadcast_to(np.asarray(rows_T[part], dtype=np.int64)[:, None], experts.shape)
        kept = experts >= 0
        counts += np.bincount(rows[kept] * n_experts + experts[kept], minlength=n_rows * n_experts)
    return counts.reshape(n_rows, n_experts)
