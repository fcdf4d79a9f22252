"""One choice of a request as the engine runs it: its own generator, its tokens, where its KV cache lives, and
what ends it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from dsmoe.inference.sampling import sample_next
from dsmoe.model.kv_cache import KVCache
from dsmoe.serve.request import CompletionRequest
from dsmoe.serve.stops import StopStrings
from dsmoe.serve.stream import Finished, SequenceStream


class Sequence:
    """Choice `stream.index` of `request`, sampling from a generator seeded with `seed` alone, so its draws do not
    depend on the batch. Its cached tokens are the last n_cached positions of row `row` of `cache`; the newest
    token is not cached yet (it is the next decoding step's input)."""

    def __init__(self, request: CompletionRequest, stream: SequenceStream, seed: int, device: torch.device,
                 detokenize: Callable[[list[int]], str] | None):
        self.request, self.stream = request, stream
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.stop_strings = StopStrings(request.stop, detokenize) if request.stop else None
        self.tokens: list[int] = []
        self.cache: KVCache | None = None
        self.row = 0
        self.n_cached = 0
        self.done = False

    def ending(self, eos_token_id: int | None) -> tuple[str, int | None] | None:
        """(finish reason, stop string offset) when the newest token ends the sequence, else None."""
        if self.tokens[-1] == eos_token_id:
            return "stop", None
        stop_at = self.stop_strings.find(self.tokens) if self.stop_strings is not None else None
        if stop_at is not None:
            return "stop", stop_at
        if len(self.tokens) >= self.request.max_tokens:
            return "length", None
        return None

    def finish(self, reason: str, step: int, stop_at: int | None = None, error: str | None = None) -> None:
        self.done = True
        self.stream.put(Finished(reason, step, stop_at, error))


def next_tokens(logits_BV: torch.Tensor, sequences: list[Sequence]) -> list[int]:
    """Each row's next token: one argmax for the batch (greedy rows keep it), then each sampling row draws from its
    own generator with its own settings, as dsmoe.inference.generate draws it; one copy to the host."""
    tokens_B = logits_BV.argmax(dim=-1)
    for row, sequence in enumerate(sequences):
        request = sequence.request
        if request.temperature > 0:
            tokens_B[row] = sample_next(logits_BV[row:row + 1], request.temperature, request.top_k, request.top_p,
                                        sequence.generator)[0]
    return tokens_B.tolist()
