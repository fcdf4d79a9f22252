"""Rotary position embedding (Su et al. 2021): half-split pairs (Llama) or interleaved pairs (DeepSeek MLA)."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.model.yarn import YarnScaling


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions; theta_i = base^(-2i/d) (RoFormer Eq. 15), or YaRN's rescaled
    frequencies with cos and sin multiplied by its attention factor."""

    def __init__(self, head_dim: int, base: float, yarn: YarnScaling | None = None):
        super().__init__()
        if yarn is None:
            inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        else:
            inv_freq = yarn.inv_freq(head_dim, base)
        self.attention_factor = 1.0 if yarn is None else yarn.attention_factor
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions_L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [L, U] for positions [L]; [B, L, U] for per-row positions [B, L]."""
        angles_LX = positions_L.float().unsqueeze(-1) * self.inv_freq  # X = U / 2, one angle per rotated pair
        angles_LU = torch.cat([angles_LX, angles_LX], dim=-1)
        return angles_LU.cos() * self.attention_factor, angles_LU.sin() * self.attention_factor


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x_BHLU: torch.Tensor, cos_LU: torch.Tensor, sin_LU: torch.Tensor,
               interleaved: bool = False) -> torch.Tensor:
    """Rotate each (i, i + d/2) pair, or each (2i, 2i + 1) pair when interleaved, by its position's angle.
    cos_LU/sin_LU broadcast against x [B, H, L, U]: [L, U], or [B, 1, L, U] for per-row positions.

    The interleaved result is laid out [rotated evens, rotated odds] as transformers' DeepSeek-V3 does: the
    same permutation for queries and keys, so q.k (all attention uses) equals the in-place rotation's.
    """
    if not interleaved:
        return (x_BHLU * cos_LU + rotate_half(x_BHLU) * sin_LU).to(x_BHLU.dtype)
    half = cos_LU.shape[-1] // 2
    cos_LX, sin_LX = cos_LU[..., :half], sin_LU[..., :half]  # X = U / 2
    even, odd = x_BHLU[..., 0::2], x_BHLU[..., 1::2]
    return torch.cat([even * cos_LX - odd * sin_LX, odd * cos_LX + even * sin_LX], dim=-1).to(x_BHLU.dtype)
