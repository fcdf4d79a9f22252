"""One choice's answer as its engine events arrive: its text (cut where the engine found a stop string), the
pieces of it a stream may send, and its log-probabilities in the legacy completions format (tokens,
token_logprobs, top_logprobs, text_offset)."""

from __future__ import annotations

from collections.abc import Callable

from dsmoe.serve.logprobs import TokenLogprob
from dsmoe.serve.stream import Event, Finished, PromptScored, TokenEvent

Decode = Callable[[list[int]], str]


def sendable_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of a growing completion a stream may send: never a partial UTF-8 character, nothing from a stop
    string on, and not a tail that could be the start of one."""
    text = text.rstrip("\ufffd")
    found = [at for stop in stops if (at := text.find(stop)) >= 0]
    if found:
        return min(found)
    held = max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
    return len(text) - held


class LogprobEntries:
    """Scored tokens in the legacy format; text_offset counts characters from the start of the prompt's text (a
    prompt token's by the lengths of the tokens before it, decoded one by one; a new token's by the length of
    the completion decoded before it)."""

    def __init__(self, decode: Decode):
        self.decode = decode
        self.entries: list[tuple[str, float | None, dict[str, float] | None, int]] = []

    def add(self, token_id: int, scored: TokenLogprob | None, offset: int) -> int:
        """Append one token at `offset`; the offset after it."""
        text = self.decode([token_id])
        tops = None if scored is None else {self.decode([top]): value for top, value in scored.top}
        self.entries.append((text, None if scored is None else scored.logprob, tops, offset))
        return offset + len(text)

    def take(self, before: int | None = None) -> dict:
        """The entries starting before `before` (all when None) as the legacy dict; the others stay."""
        kept = [entry for entry in self.entries if before is None or entry[3] < before]
        self.entries = self.entries[len(kept):]
        return {"tokens": [entry[0] for entry in kept], "token_logprobs": [entry[1] for entry in kept],
                "top_logprobs": [entry[2] for entry in kept], "text_offset": [entry[3] for entry in kept]}


class ChoiceOutput:
    """Choice `index` of the prompt prompt_ids (whose text is prompt_text). update() takes each event and returns
    the streamed delta it makes ({"index", "text", "logprobs", "finish_reason"}) or None; answer() is the whole
    choice once finished. With echo the prompt's text (and its scores) come first."""

    def __init__(self, index: int, prompt_ids: list[int], prompt_text: str, decode: Decode, stops: tuple[str, ...],
                 logprobs: bool, echo: bool):
        self.index, self.prompt_ids, self.prompt_text, self.decode = index, prompt_ids, prompt_text, decode
        self.stops, self.wants_logprobs, self.echo = stops, logprobs, echo
        self.tokens: list[int] = []
        self.scores = LogprobEntries(decode)
        self.completion = ""  # the decoded tokens so far: the next token's text starts at its end
        self.sent = 0  # characters of the completion already sent
        self.finished: Finished | None = None

    def update(self, event: Event) -> dict | None:
        if isinstance(event, PromptScored):
            offset = 0
            for token, scored in zip(self.prompt_ids, event.logprobs):
                offset = self.scores.add(token, scored, offset)
            return self.delta(self.prompt_text, self.scores.take())
        if isinstance(event, TokenEvent):
            self.scores.add(event.token_id, event.logprob, len(self.prompt_text) + len(self.completion))
            self.tokens.append(event.token_id)
            self.completion = self.decode(self.tokens)
            sendable = sendable_length(self.completion, self.stops)
            return self.send_until(sendable, len(self.prompt_text) + sendable) if sendable > self.sent else None
        self.finished = event
        cut = len(self.prompt_text) + len(self.text) if event.stop_at is not None else None  # drop what follows
        return {**self.send_until(len(self.text), cut), "finish_reason": self.finish_reason}

    def send_until(self, end: int, scored_before: int | None) -> dict:
        """The completion's text from what was sent to `end`, with the scores of the tokens whose text starts
        before scored_before (None: all the rest)."""
        piece, self.sent = self.text_so_far()[self.sent:end], end
        return self.delta(piece, self.scores.take(scored_before))

    def text_so_far(self) -> str:
        return self.text if self.finished is not None else self.completion

    def delta(self, text: str, scores: dict) -> dict:
        return {"index": self.index, "text": text, "logprobs": scores if self.wants_logprobs else None,
                "finish_reason": None}

    @property
    def text(self) -> str:
        """The finished completion, cut where the engine found a stop string."""
        stop_at = self.finished.stop_at
        return self.completion[:stop_at] if stop_at is not None else self.completion

    @property
    def finish_reason(self) -> str:
        return "length" if self.finished.reason == "length" else "stop"

    def answer(self, events: list[Event]) -> dict:
        """The whole choice from all its events."""
        pieces = [delta for event in events if (delta := self.update(event)) is not None]
        text = "".join(piece["text"] for piece in pieces)
        scores = {key: [value for piece in pieces for value in piece["logprobs"][key]]
                  for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset")} if self.wants_logprobs \
            else None
        return {"index": self.index, "text": text, "logprobs": scores, "finish_reason": self.finish_reason}
