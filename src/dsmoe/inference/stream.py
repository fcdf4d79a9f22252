"""Streaming decoded text: emit only complete UTF-8 characters as tokens arrive."""

from __future__ import annotations

from typing import TextIO

from tokenizers import Tokenizer

from dsmoe.inference.generate import SamplingConfig, generate
from dsmoe.model import DeepSeekMoEForCausalLM


def stream_completion(model: DeepSeekMoEForCausalLM, tokenizer: Tokenizer, prompt: str, sampling: SamplingConfig,
                      out: TextIO | None = None) -> str:
    """Generate after `prompt`, writing the decoded text to `out` as it grows; return the completion."""
    tokens: list[int] = []
    written = 0

    def on_token(token: int) -> None:
        nonlocal written
        tokens.append(token)
        text = tokenizer.decode(tokens)
        stable = len(text.rstrip("\ufffd"))  # hold back a partial multi-byte character
        if out is not None and stable > written:
            out.write(text[written:stable])
            out.flush()
            written = stable

    generate(model, tokenizer.encode(prompt).ids, sampling, on_token)
    completion = tokenizer.decode(tokens)
    if out is not None and len(completion) > written:
        out.write(completion[written:])
    return completion
