"""What each expert fires on most strongly: the token positions with the highest routing weight per expert, read
from a layer's routing trace in chunks (a running top-n per expert, so memory does not grow with the corpus), and
shown as text with some context."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks


def merge_top(best_weights: np.ndarray, best_positions: np.ndarray, weights: np.ndarray, positions: np.ndarray,
              top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The top_n (weight, position) of the running best and the new candidates, by weight then earlier position."""
    all_weights, all_positions = np.concatenate([best_weights, weights]), np.concatenate([best_positions, positions])
    order = np.lexsort((all_positions, -all_weights))[:top_n]
    return all_weights[order], all_positions[order]


def highest_weight_positions(experts_TK: np.ndarray, weights_TK: np.ndarray, n_experts: int, top_n: int = 8,
                             chunk_tokens: int = CHUNK_TOKENS) -> list[list[tuple[int, float]]]:
    """Per expert, up to top_n (token position, routing weight) with the highest weight that expert got, highest
    first (ties: the earlier position). Dropped pairs (expert -1) are not candidates."""
    best = [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(n_experts)]
    for part in token_chunks(len(experts_TK), chunk_tokens):
        experts = np.asarray(experts_TK[part], dtype=np.int64)
        weights = np.asarray(weights_TK[part], dtype=np.float32)
        positions = np.broadcast_to(np.arange(part.start, part.stop)[:, None], experts.shape)
        kept = experts >= 0
        experts, weights, positions = experts[kept], weights[kept], positions[kept]
        order = np.argsort(experts, kind="stable")
        bounds = np.searchsorted(experts[order], np.arange(n_experts + 1))
        for expert in range(n_experts):
            rows = order[bounds[expert]:bounds[expert + 1]]
            if len(rows) > top_n:  # only this chunk's own top_n can enter the running top_n
                rows = rows[np.argpartition(-weights[rows], top_n - 1)[:top_n]]
            best[expert] = merge_top(*best[expert], weights[rows], positions[rows], top_n)
    return [[(int(p), float(w)) for w, p in zip(*best[expert])] for expert in range(n_experts)]


def in_context(token_ids_T: np.ndarray, position: int, seq_len: int, decode: Callable[[list[int]], str],
               before: int = 12, after: int = 4) -> dict[str, str]:
    """The token at `position` decoded, with up to `before` / `after` tokens of text around it, and where it sat in
    its window of seq_len tokens (the model saw only the window: the first token of one had no context at all)."""
    start, stop = max(0, position - before), min(len(token_ids_T), position + after + 1)
    ids = np.asarray(token_ids_T[start:stop], dtype=np.int64).tolist()
    at = position - start
    return {"before": decode(ids[:at]), "token": decode(ids[at:at + 1]), "after": decode(ids[at + 1:]),
            "in_window": position % seq_len}
