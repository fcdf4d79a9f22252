"""Padded batches: which tokens are real, the RoPE position of each, and which keys each query may see."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dsmoe.model.kv_cache import KVCache


def visible_keys(real_keys_BM: torch.Tensor, n_query: int) -> torch.Tensor:
    """Boolean [B, 1, L, M] attention mask for the last L of M positions: a query sees the real keys at or
    before it, and always itself, so a left pad with no real key before it still has a finite softmax (no
    NaN to leak through the cache) while no real query ever sees a pad key."""
    n_keys = real_keys_BM.shape[1]
    query_pos_L1 = torch.arange(n_keys - n_query, n_keys, device=real_keys_BM.device).unsqueeze(1)
    key_pos_1M = torch.arange(n_keys, device=real_keys_BM.device).unsqueeze(0)
    causal_BLM = (key_pos_1M <= query_pos_L1) & real_keys_BM.unsqueeze(1)
    return (causal_BLM | (key_pos_1M == query_pos_L1)).unsqueeze(1)


@dataclass
class Padding:
    """What a forward over a padded batch needs besides the token ids.

    real_BL: True at the real tokens of this forward, False at pads (left padding, or rows that stopped).
    position_ids_BL: each token's position among its row's real tokens (cached ones included), so a row's
        RoPE angles are those of the same tokens run alone; pads take the position of the next real token.
    visible_B1LM: the attention mask over the cached and the new keys (see visible_keys).
    """

    real_BL: torch.Tensor
    position_ids_BL: torch.Tensor
    visible_B1LM: torch.Tensor

    @classmethod
    def build(cls, attention_mask_BL: torch.Tensor | None, cache: KVCache | None,
              input_ids_BL: torch.Tensor) -> Padding | None:
        """None when nothing is padded (no mask, and no cache that holds pads): the plain causal path."""
        if attention_mask_BL is None and (cache is None or cache.real_BM is None):
            return None
        if attention_mask_BL is None:
            attention_mask_BL = torch.ones_like(input_ids_BL, dtype=torch.bool)
        if attention_mask_BL.shape != input_ids_BL.shape:
            raise ValueError(f"attention_mask_BL has shape {tuple(attention_mask_BL.shape)}; it must match "
                             f"input_ids {tuple(input_ids_BL.shape)} (True at real tokens, False at pads)")
        real_BL = attention_mask_BL.to(torch.bool)
        real_keys_BM = cache.record_real(real_BL) if cache is not None else real_BL
        n_real_before_B = real_keys_BM[:, :-real_BL.shape[1]].sum(dim=1)
        position_ids_BL = n_real_before_B.unsqueeze(1) + real_BL.cumsum(dim=1) - real_BL.long()
        return cls(real_BL, position_ids_BL, visible_keys(real_keys_BM, real_BL.shape[1]))
