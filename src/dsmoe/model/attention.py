"""Causal multi-head attention with grouped-query heads, RoPE and an optional KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.rope import apply_rope


def causal_mask(n_query: int, n_past: int, device: torch.device) -> torch.Tensor | None:
    """Boolean [L, past + L] mask letting query i see keys 0..past + i; None when is_causal suffices."""
    if n_past == 0 or n_query == 1:
        return None
    query_pos = torch.arange(n_query, device=device).unsqueeze(1) + n_past
    return query_pos >= torch.arange(n_past + n_query, device=device).unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x_BLD: torch.Tensor, cos_LD: torch.Tensor, sin_LD: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        batch, seq_len, _ = x_BLD.shape
        q = self.q_proj(x_BLD).view(batch, seq_len, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x_BLD).view(batch, seq_len, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x_BLD).view(batch, seq_len, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos_LD, sin_LD), apply_rope(k, cos_LD, sin_LD)
        n_past = 0
        if cache is not None:
            n_past = cache.length
            k, v = cache.update(self.layer_idx, k, v)
        mask = causal_mask(seq_len, n_past, x_BLD.device)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and seq_len > 1,
                                             enable_gqa=self.n_kv_heads != self.n_heads)
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq_len, -1))
