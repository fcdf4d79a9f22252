"""RMSNorm (Zhang & Sennrich 2019), computed in fp32 as DeepSeek's and Llama's code do."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_fp32 = x.float()
        normed = x_fp32 * torch.rsqrt(x_fp32.square().mean(dim=-1, keepdim=True) + self.eps)
        return (self.weight * normed).to(x.dtype)
