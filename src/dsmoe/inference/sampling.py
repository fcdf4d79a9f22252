"""Sampling the next token: temperature, top-k and nucleus (top-p) filtering."""

from __future__ import annotations

import torch


def filter_top_k(logits_BV: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Keep the k largest logits of each row (ties at the k-th value kept)."""
    if not top_k or top_k >= logits_BV.shape[-1]:
        return logits_BV
    kth = logits_BV.topk(top_k, dim=-1).values[..., -1:]
    return logits_BV.masked_fill(logits_BV < kth, float("-inf"))


def filter_top_p(logits_BV: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches top_p (Holtzman et al. 2020)."""
    if top_p is None or top_p >= 1.0:
        return logits_BV
    sorted_logits, order = logits_BV.sort(dim=-1, descending=True)
    mass_before = sorted_logits.softmax(dim=-1).cumsum(dim=-1) - sorted_logits.softmax(dim=-1)
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.full_like(logits_BV, float("-inf")).scatter(-1, order, sorted_logits)


def sample_next(logits_BV: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """[B] next tokens; temperature 0 means greedy."""
    if temperature == 0:
        return logits_BV.argmax(dim=-1)
    logits_BV = filter_top_p(filter_top_k(logits_BV.float() / temperature, top_k), top_p)
    return torch.multinomial(logits_BV.softmax(dim=-1), 1, generator=generator).squeeze(-1)
