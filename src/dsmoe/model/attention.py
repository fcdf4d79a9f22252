"""Causal multi-head attention with grouped-query heads, RoPE, an optional KV cache, optional q/k/v and
output biases (Qwen2-MoE, Llama) and optional q/k RMSNorm per head (Qwen3-MoE) or per projection (OLMoE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.norm import RMSNorm
from dsmoe.model.rope import apply_rope
from dsmoe.model.yarn import softmax_scale


def causal_mask(n_query: int, n_past: int, device: torch.device) -> torch.Tensor | None:
    """Boolean [L, past + L] mask letting query i see keys 0..past + i; None when is_causal suffices."""
    if n_past == 0 or n_query == 1:
        return None
    query_pos = torch.arange(n_query, device=device).unsqueeze(1) + n_past
    return query_pos >= torch.arange(n_past + n_query, device=device).unsqueeze(0)


def causal_attention(q_BHLJ: torch.Tensor, k_BHMJ: torch.Tensor, v_BHMW: torch.Tensor, n_past: int,
                     scale: float, visible_B1LM: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scale * q k^T + causal mask) v, with fewer key/value heads shared by groups of query heads.

    visible_B1LM: a padded batch's mask (dsmoe.model.padding.visible_keys), used instead of the causal one.
    """
    seq_len = q_BHLJ.shape[2]
    mask = causal_mask(seq_len, n_past, q_BHLJ.device) if visible_B1LM is None else visible_B1LM
    return F.scaled_dot_product_attention(q_BHLJ, k_BHMJ, v_BHMW, attn_mask=mask,
                                          is_causal=mask is None and seq_len > 1, scale=scale,
                                          enable_gqa=k_BHMJ.shape[1] != q_BHLJ.shape[1])


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, q_width, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_width, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_width, bias=config.attention_bias)
        self.o_proj = nn.Linear(q_width, config.hidden_size, bias=config.o_proj_bias)
        self.qk_norm = config.qk_norm
        norm_widths = {"head": (self.head_dim, self.head_dim), "full": (q_width, kv_width)}.get(config.qk_norm)
        self.q_norm = RMSNorm(norm_widths[0], config.norm_eps) if norm_widths else None
        self.k_norm = RMSNorm(norm_widths[1], config.norm_eps) if norm_widths else None
        self.rope_interleave = config.rope_interleave
        self.softmax_scale = softmax_scale(config, self.head_dim)

    def heads(self, x_BLX: torch.Tensor, n_heads: int, norm: RMSNorm | None = None) -> torch.Tensor:
        """[B, L, X = n_heads * head_dim] -> [B, n_heads, L, head_dim], normalised as qk_norm asks."""
        if norm is not None and self.qk_norm == "full":
            x_BLX = norm(x_BLX)
        x_BLHJ = x_BLX.unflatten(-1, (n_heads, self.head_dim))
        if norm is not None and self.qk_norm == "head":
            x_BLHJ = norm(x_BLHJ)
        return x_BLHJ.transpose(1, 2)

    def forward(self, x_BLD: torch.Tensor, cos_LU: torch.Tensor, sin_LU: torch.Tensor,
                cache: KVCache | None = None, visible_B1LM: torch.Tensor | None = None) -> torch.Tensor:
        """cos_LU/sin_LU are [L, U], or [B, 1, L, U] when each row has its own positions (a padded batch)."""
        batch, seq_len, _ = x_BLD.shape
        q = self.heads(self.q_proj(x_BLD), self.n_heads, self.q_norm)
        k = self.heads(self.k_proj(x_BLD), self.n_kv_heads, self.k_norm)
        v = self.heads(self.v_proj(x_BLD), self.n_kv_heads)
        q, k = apply_rope(q, cos_LU, sin_LU, self.rope_interleave), apply_rope(k, cos_LU, sin_LU, self.rope_interleave)
        n_past = 0
        if cache is not None:
            n_past = cache.length
            k, v = cache.update(self.layer_idx, k, v)
        out = causal_attention(q, k, v, n_past, self.softmax_scale, visible_B1LM)
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq_len, -1))
