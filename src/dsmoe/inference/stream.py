"""Text in, text out: one completion streamed as it grows (complete UTF-8 characters only), or many
completions generated in batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from tokenizers import Tokenizer

from dsmoe.inference.generate import SamplingConfig, generate, generate_batch
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


def complete_in_batches(model: DeepSeekMoEForCausalLM, tokenizer: Tokenizer, prompts: list[str],
                        sampling: SamplingConfig, batch_size: int) -> Iterator[str]:
    """The completion of each prompt, in order, generating batch_size prompts at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    for start in range(0, len(prompts), batch_size):
        batch = [tokenizer.encode(prompt).ids for prompt in prompts[start:start + batch_size]]
        yield from (tokenizer.decode(tokens) for tokens in generate_batch(model, batch, sampling))
