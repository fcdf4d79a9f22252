"""Routing stability between two checkpoints: how many tokens of the same text go to another set of experts
(how early routing settles in training). Both traces must hold the same tokens; arrays may be np.memmap and
are read in chunks of chunk_tokens tokens."""

from __future__ import annotations

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, token_chunks


def check_same_tokens(token_ids_a_T: np.ndarray, token_ids_b_T: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> None:
    """Raise ValueError unless both traces routed the same token ids in the same order, naming the first
    position where they differ."""
    if len(token_ids_a_T) != len(token_ids_b_T):
        raise ValueError(f"the traces hold {len(token_ids_a_T)} and {len(token_ids_b_T)} tokens: not the same text")
    for part in token_chunks(len(token_ids_a_T), chunk_tokens):
        differ = np.flatnonzero(np.asarray(token_ids_a_T[part]) != np.asarray(token_ids_b_T[part]))
        if len(differ):
            position = part.start + int(differ[0])
            raise ValueError(f"the traces route different tokens (first at position {position}: token id "
                             f"{token_ids_a_T[position]} against {token_ids_b_T[position]}): not the same text")


def expert_set_changes(experts_a_TK: np.ndarray, experts_b_TK: np.ndarray, chunk_tokens: int = CHUNK_TOKENS) -> dict:
    """Per token, A and B its sets of kept experts in the two traces (dropped slots, -1, are in neither):
    changed_share, the share of tokens with A != B (order in the top-k aside); mean_overlap, the mean over
    tokens of |A & B| / K (a dropped slot overlaps nothing, so identical traces with drops score their kept
    share, below 1); top1_changed_share, the share of tokens whose first slot (the router's first kept choice)
    holds another expert. All 0 for no tokens."""
    if experts_a_TK.shape != experts_b_TK.shape or experts_a_TK.ndim != 2:
        raise ValueError(f"routing traces of shapes {experts_a_TK.shape} and {experts_b_TK.shape} cannot be "
                         "compared (the same [tokens, top_k] needed)")
    n_tokens, top_k = experts_a_TK.shape
    changed = overlap = top1_changed = 0
    for part in token_chunks(n_tokens, chunk_tokens):
        a = np.asarray(experts_a_TK[part], dtype=np.int64)
        b = np.asarray(experts_b_TK[part], dtype=np.int64)
        top1_changed += int((a[:, 0] != b[:, 0]).sum())
        changed += int((np.sort(a, axis=1) != np.sort(b, axis=1)).any(axis=1).sum())
        shared_TKK = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)  # a token holds an expert once
        overlap += int(shared_TKK.sum())
    total = max(n_tokens, 1)
    return {"changed_share": changed / total, "mean_overlap": overlap / (total * top_k),
            "top1_changed_share": top1_changed / total}
