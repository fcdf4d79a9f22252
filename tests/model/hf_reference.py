"""Helpers for tests that compare dsmoe modules with transformers' own (skipped where it is not installed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

TOLERANCE = 1e-5  # max abs difference allowed against transformers in fp32


def transformers_module(name: str):
    """Import transformers.models.<name> (e.g. "deepseek_v3.modeling_deepseek_v3") or skip the test."""
    return pytest.importorskip(f"transformers.models.{name}")


def causal_additive_mask(seq_len: int) -> torch.Tensor:
    """The [1, 1, L, L] mask transformers' eager attention adds to its scores: -inf above the diagonal."""
    return torch.full((seq_len, seq_len), float("-inf")).triu(1)[None, None]


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Matrices N(0, 0.3^2); vectors (norm gains, biases) 1 + N(0, 0.1^2), so no weight is trivial."""
    generator = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        noise = torch.randn(param.shape, generator=generator)
        param.copy_(noise * 0.3 if param.ndim > 1 else 1 + noise * 0.1)
    return module


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()
