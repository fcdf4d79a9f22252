"""Sampling the next token: temperature, top-k and nucleus (top-p) filtering."""

from __future__ import annotations

import torch


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Refuse settings sample_next cannot honour, naming the field and its value."""
    if not temperature >= 0:  # also refuses NaN, which would reach torch.multinomial
        raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1 (or unset)")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (or unset)")


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
