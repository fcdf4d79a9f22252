"""Routing stability between two checkpoints: how many tokens of the same text go to another set of experts
(how early routing settles in training). Both traces must hold the same tokens; arrays are read in chunks."""

from __future__ import annotations

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks


def check_same_tokens(token_ids_a_T: np.ndarray, token_ids_b_T: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> None:
    """Raise ValueError unless both traces routed the same token ids in the same order."""
    if len(token_ids_a_T) != len(token_ids_b_T):
        raise ValueError(f"the traces hold {len(token_ids_a_T)} and {len(token_ids_b_T)} tokens: not the same text")
    for part in token_chunks(len(token_ids_a_T), chunk_tokens):
        if not np.array_equal(token_ids_a_T[part], token_ids_b_T[part]):
            raise ValueError(f"the traces route different tokens (first difference in tokens {part.start}-"
                             f"{part.stop - 1}): not the same text")


def expert_set_changes(experts_a_TK: np.ndarray, experts_b_TK: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """changed_share: tokens whose set of kept experts differs (order in the top-k aside); mean_overlap: mean over
    tokens of |A & B| / K; top1_changed_share: tokens whose first (highest-weight) expert differs."""
    if experts_a_TK.shape != experts_b_TK.shape:
        raise ValueError(f"routing traces of shapes {experts_a_TK.shape} and {experts_b_TK.shape} cannot be "
                         "compared (same tokens and top_k needed)")
    n_tokens, top_k = experts_a_TK.shape
    changed = overlap = top1_changed = 0
    for part in token_chunks(n_tokens, chunk_tokens):
        a = np.sort(np.asarray(experts_a_TK[part], dtype=np.int64), axis=1)
        b = np.sort(np.asarray(experts_b_TK[part], dtype=np.int64), axis=1)
        changed += int((a != b).any(axis=1).sum())
        kept_b = np.where(b >= 0, b, -2)  # a dropped slot (-1) matches nothing
        overlap += int(((a[:, :, None] == kept_b[:, None, :]) & (a[:, :, None] >= 0)).any(axis=2).sum())
        top1_changed += int((np.asarray(experts_a_TK[part][:, 0]) != np.asarray(experts_b_TK[part][:, 0])).sum())
    total = max(n_tokens, 1)
    return {"changed_share": changed / total, "mean_overlap": overlap / (total * top_k),
            "top1_changed_share": top1_changed / total}
