"""What a client asks of the engine: a prompt's token ids and how to continue it, in OpenAI's completion fields."""

from __future__ import annotations

from dataclasses import dataclass

from dsmoe.inference.sampling import check_sampling

MAX_LOGPROBS = 20  # the most alternatives a token's log-probabilities list (OpenAI's chat limit)


@dataclass(frozen=True)
class CompletionRequest:
    """One completion request, validated at construction (the engine checks it against its model on submit).

    prompt_ids: the prompt's token ids, at least one.
    max_tokens: the most new tokens of each choice; 0 only scores the prompt (with echo). Default 16.
    temperature, top_k, top_p: as dsmoe.inference.sample_next; temperature 0 is greedy. Default 1.0, None, None.
    seed: choice i draws from its own generator seeded with seed + i, so its tokens do not depend on the other
        sequences in the batch; None: a fresh random seed per choice. Default None.
    stop: strings that end a choice once its text contains one (the engine needs a detokenizer). Default ().
    n: how many choices, each an independent sequence. Default 1.
    logprobs: for each new token, its log-probability under the model (log_softmax of the raw logits, before
        temperature or filtering) and the `logprobs` likeliest tokens' (0: the chosen token's only); None: none.
        At most MAX_LOGPROBS. Default None.
    echo: also score the prompt: each prompt token's log-probability given the tokens before it (the first has
        none), with `logprobs` alternatives when that is set; lm-evaluation-harness scores choices this way,
        with max_tokens=0. Default False.
    """

    prompt_ids: tuple[int, ...]
    max_tokens: int = 16
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    logprobs: int | None = None
    echo: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_ids", tuple(self.prompt_ids))
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        if not self.prompt_ids:
            raise ValueError("prompt_ids is empty (give at least one token)")
        if self.max_tokens < 0:
            raise ValueError(f"max_tokens={self.max_tokens} must be >= 0 (0 only scores the prompt)")
        if self.n < 1:
            raise ValueError(f"n={self.n} must be >= 1")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise ValueError(f"logprobs={self.logprobs} must be in [0, {MAX_LOGPROBS}] (or unset)")
        if any(not text for text in self.stop):
            raise ValueError(f"stop={list(self.stop)} holds an empty string")
        check_sampling(self.temperature, self.top_k, self.top_p)

    @property
    def top_logprobs(self) -> int:
        """How many alternatives each scored token lists."""
        return self.logprobs or 0
