"""Rotary position embedding (Su et al. 2021) in the half-split layout used by Llama and DeepSeek."""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions; theta_i = base^(-2i/d) (RoFormer Eq. 15)."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions_L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles_LH = positions_L.float().unsqueeze(-1) * self.inv_freq
        angles_LD = torch.cat([angles_LH, angles_LH], dim=-1)
        return angles_LD.cos(), angles_LD.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x_BHLD: torch.Tensor, cos_LD: torch.Tensor, sin_LD: torch.Tensor) -> torch.Tensor:
    """Rotate each (i, i + d/2) pair of x by its position's angle."""
    return (x_BHLD * cos_LD + rotate_half(x_BHLD) * sin_LD).to(x_BHLD.dtype)
