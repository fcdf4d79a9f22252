"""Text in, text out: one completion streamed as it grows (complete UTF-8 characters only), plainly or by
self-speculative decoding, or many completions generated in batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from tokenizers import Tokenizer

from dsmoe.inference.generate import SamplingConfig, generate, generate_batch
from dsmoe.inference.speculative import SpeculativeResult, generate_speculative
from dsmoe.model import DeepSeekMoEForCausalLM


class StreamedText:
    """The decoded text of the tokens seen so far, written to `out` as it grows (complete UTF-8 characters only)."""

    def __init__(self, tokenizer: Tokenizer, out: TextIO | None):
        self.tokenizer, self.out = tokenizer, out
        self.tokens: list[int] = []
        self.written = 0

    def on_token(self, token: int) -> None:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens)
        stable = len(text.rstrip("\ufffd"))  # hold back a partial multi-byte character
        if self.out is not None and stable > self.written:
            self.out.write(text[self.written:stable])
            self.out.flush()
            self.written = stable

    def finish(self) -> str:
        """Write what was held back; return the whole completion."""
        completion = self.tokenizer.decode(self.tokens)
        if self.out is not None and len(completion) > self.written:
            self.out.write(completion[self.written:])
        return completion


def stream_completion(model: DeepSeekMoEForCausalLM, tokenizer: Tokenizer, prompt: str, sampling: SamplingConfig,
                      out: TextIO | None = None, compile_decode: bool = False) -> str:
    """Generate after `prompt`, writing the decoded text to `out` as it grows; return the completion."""
    text = StreamedText(tokenizer, out)
    generate(model, tokenizer.encode(prompt).ids, sampling, text.on_token, compile_decode)
    return text.finish()


def stream_speculative(model: DeepSeekMoEForCausalLM, tokenizer: Tokenizer, prompt: str, sampling: SamplingConfig,
                       out: TextIO | None = None) -> tuple[str, SpeculativeResult]:
    """stream_completion by greedy self-speculative decoding; also returns the draft acceptance counts."""
    text = StreamedText(tokenizer, out)
    result = generate_speculative(model, tokenizer.encode(prompt).ids, sampling, text.on_token)
    return text.finish(), result


def complete_in_batches(model: DeepSeekMoEForCausalLM, tokenizer: Tokenizer, prompts: list[str],
                        sampling: SamplingConfig, batch_size: int, compile_decode: bool = False) -> Iterator[str]:
    """The completion of each prompt, in order, generating batch_size prompts at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    for start in range(0, len(prompts), batch_size):
        batch = [tokenizer.encode(prompt).ids for prompt in prompts[start:start + batch_size]]
        yield from (tokenizer.decode(tokens) for tokens in generate_batch(model, batch, sampling,
                                                                             compile_decode=compile_decode))
