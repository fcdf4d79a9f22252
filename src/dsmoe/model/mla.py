"""Multi-head latent attention (DeepSeek-V2 Sec. 2.1, DeepSeek-V3 Sec. 2.1.1): keys and values come from a
compressed latent c_kv, positions from a decoupled RoPE key shared by all heads, and the KV cache keeps
only (c_kv, k_rope) per token."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.attention import causal_attention
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.norm import RMSNorm
from dsmoe.model.rope import apply_rope
from dsmoe.model.yarn import softmax_scale

LOW_RANK_NORM_EPS = 1e-6  # DeepSeek's code and transformers build q_a/kv_a_layernorm with eps 1e-6, not norm_eps


class MultiHeadLatentAttention(nn.Module):
    """DeepSeek-V2 Eq. 9-19, with transformers' DeepseekV3Attention parameter names (conversion is a rename):

    c_kv = kv_a_layernorm(W_DKV h) and k_rope = RoPE(W_KR h), both from kv_a_proj_with_mqa (Eq. 9, 16);
    [k_nope; v] per head = kv_b_proj c_kv, i.e. W_UK and W_UV stacked (Eq. 10-11);
    [q_nope; q_rope] = q_b_proj(q_a_layernorm(q_a_proj h)) (Eq. 12-15), or q_proj h when q_lora_rank is None;
    each head attends with [q_nope; q_rope] . [k_nope; k_rope] (Eq. 17-18) and o_proj mixes the heads (Eq. 19).
    """

    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.q_lora_rank, self.kv_lora_rank = config.n_heads, config.q_lora_rank, config.kv_lora_rank
        self.qk_nope_head_dim, self.qk_rope_head_dim = config.qk_nope_head_dim, config.qk_rope_head_dim
        self.qk_head_dim, self.v_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim, config.v_head_dim
        hidden, q_width = config.hidden_size, self.n_heads * self.qk_head_dim
        if self.q_lora_rank is None:
            self.q_proj = nn.Linear(hidden, q_width, bias=False)
        else:
            self.q_a_proj = nn.Linear(hidden, self.q_lora_rank, bias=config.attention_bias)
            self.q_a_layernorm = RMSNorm(self.q_lora_rank, LOW_RANK_NORM_EPS)
            self.q_b_proj = nn.Linear(self.q_lora_rank, q_width, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(hidden, self.kv_lora_rank + self.qk_rope_head_dim,
                                            bias=config.attention_bias)
        self.kv_a_layernorm = RMSNorm(self.kv_lora_rank, LOW_RANK_NORM_EPS)
        self.kv_b_proj = nn.Linear(self.kv_lora_rank, self.n_heads * (self.qk_nope_head_dim + self.v_head_dim),
                                   bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.v_head_dim, hidden, bias=config.o_proj_bias)
        self.rope_interleave, self.absorb = config.rope_interleave, config.mla_absorb
        self.softmax_scale = softmax_scale(config, self.qk_head_dim)

    def queries(self, x_BLD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_nope [B, H, L, N], q_rope [B, H, L, U]), before RoPE."""
        if self.q_lora_rank is None:
            q = self.q_proj(x_BLD)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x_BLD)))
        q_BHLJ = q.unflatten(-1, (self.n_heads, self.qk_head_dim)).transpose(1, 2)
        return q_BHLJ.split([self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)

    def forward(self, x_BLD: torch.Tensor, cos_LU: torch.Tensor, sin_LU: torch.Tensor,
                cache: KVCache | None = None, visible_B1LM: torch.Tensor | None = None) -> torch.Tensor:
        """cos_LU/sin_LU are [L, U], or [B, 1, L, U] per row; visible_B1LM masks a padded batch's keys."""
        batch, seq_len, _ = x_BLD.shape
        q_nope_BHLN, q_rope_BHLU = self.queries(x_BLD)
        c_kv_BLC, k_rope_BLU = self.kv_a_proj_with_mqa(x_BLD).split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        c_kv_B1MC = self.kv_a_layernorm(c_kv_BLC).unsqueeze(1)
        q_rope_BHLU = apply_rope(q_rope_BHLU, cos_LU, sin_LU, self.rope_interleave)
        k_rope_B1MU = apply_rope(k_rope_BLU.unsqueeze(1), cos_LU, sin_LU, self.rope_interleave)
        n_past = 0
        if cache is not None:
            n_past = cache.length
            k_rope_B1MU, c_kv_B1MC = cache.update(self.layer_idx, k_rope_B1MU, c_kv_B1MC)
        attend = self.attend_absorbed if self.absorb else self.attend_expanded
        out_BHLW = attend(q_nope_BHLN, q_rope_BHLU, c_kv_B1MC, k_rope_B1MU, n_past, visible_B1LM)
        return self.o_proj(out_BHLW.transpose(1, 2).reshape(batch, seq_len, -1))

    def attend_expanded(self, q_nope_BHLN, q_rope_BHLU, c_kv_B1MC, k_rope_B1MU, n_past: int,
                        visible_B1LM: torch.Tensor | None = None) -> torch.Tensor:
        """Plain path: expand the latent into per-head keys and values (Eq. 10-11, 17-18)."""
        kv_BHMX = self.kv_b_proj(c_kv_B1MC.squeeze(1)).unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # X = N + W
        k_nope_BHMN, v_BHMW = kv_BHMX.split([self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        k_BHMJ = torch.cat([k_nope_BHMN, k_rope_B1MU.expand(-1, self.n_heads, -1, -1)], dim=-1)
        q_BHLJ = torch.cat([q_nope_BHLN, q_rope_BHLU], dim=-1)
        return causal_attention(q_BHLJ, k_BHMJ, v_BHMW, n_past, self.softmax_scale, visible_B1LM)

    def attend_absorbed(self, q_nope_BHLN, q_rope_BHLU, c_kv_B1MC, k_rope_B1MU, n_past: int,
                        visible_B1LM: torch.Tensor | None = None) -> torch.Tensor:
        """Absorbed path (DeepSeek-V2 Sec. 2.1.2): q_nope . (W_UK c) = (W_UK^T q_nope) . c, so all heads attend
        to the one cached [c_kv; k_rope] as multi-query attention, and W_UV is applied after the softmax."""
        w_kv_HXC = self.kv_b_proj.weight.unflatten(0, (self.n_heads, -1))  # X = N + W
        w_uk_HNC, w_uv_HWC = w_kv_HXC.split([self.qk_nope_head_dim, self.v_head_dim], dim=1)
        q_latent_BHLC = torch.einsum("bhln,hnc->bhlc", q_nope_BHLN, w_uk_HNC)
        q_BHLX = torch.cat([q_latent_BHLC, q_rope_BHLU], dim=-1)  # X = C + U
        k_B1MX = torch.cat([c_kv_B1MC, k_rope_B1MU], dim=-1)
        out_latent_BHLC = causal_attention(q_BHLX, k_B1MX, c_kv_B1MC, n_past, self.softmax_scale, visible_B1LM)
        return torch.einsum("bhlc,hwc->bhlw", out_latent_BHLC, w_uv_HWC)
