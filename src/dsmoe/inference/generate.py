"""Autoregressive generation with the KV cache, streaming each new token to a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dsmoe.inference.sampling import sample_next
from dsmoe.model.transformer import DeepSeekMoEForCausalLM


@dataclass
class SamplingConfig:
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if not self.temperature >= 0:  # also refuses NaN, which would reach torch.multinomial
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 = greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be >= 1 (or unset)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1] (or unset)")


@torch.no_grad()
def generate(model: DeepSeekMoEForCausalLM, prompt_ids: list[int], sampling: SamplingConfig,
             on_token: Callable[[int], None] | None = None) -> list[int]:
    """Prefill the prompt into a fresh KV cache, then decode one token at a time.

    The prompt is cut from the left so that prompt + new tokens fit in max_seq_len.
    Returns only the new tokens.
    """
    model.eval()
    max_prompt = model.config.max_seq_len - sampling.max_new_tokens
    if max_prompt < 1:
        raise ValueError(f"max_new_tokens={sampling.max_new_tokens} leaves no room for a prompt within "
                         f"max_seq_len={model.config.max_seq_len}")
    device = model.lm_head.weight.device
    inputs = torch.tensor([prompt_ids[-max_prompt:] or [0]], device=device)
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    cache = model.new_cache()
    new_tokens: list[int] = []
    for _ in range(sampling.max_new_tokens):
        logits = model(inputs, cache=cache).logits[:, -1]
        token = sample_next(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator)
        new_tokens.append(int(token))
        if on_token is not None:
            on_token(int(token))
        inputs = token.view(1, 1)
    return new_tokens
