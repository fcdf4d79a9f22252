"""One sequence's output as the engine produces it: events delivered across threads to a plain or an asyncio
consumer, a cancel flag the engine reads at its next step, and the completion the events add up to."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from dsmoe.serve.logprobs import TokenLogprob


@dataclass(frozen=True)
class PromptScored:
    """The prompt's own log-probabilities (echo), sent after its prefill; the first token's is None."""

    logprobs: list[TokenLogprob | None]
    step: int


@dataclass(frozen=True)
class TokenEvent:
    """A new token, sent as soon as it is sampled at engine step `step`; logprob when the request asked."""

    token_id: int
    logprob: TokenLogprob | None
    step: int


@dataclass(frozen=True)
class Finished:
    """The sequence's last event. reason: "stop" (the EOS token or a stop string), "length" (max_tokens),
    "cancelled" (by the client) or "error" (its forward failed, or the engine stopped: `error` says which);
    stop_at: where a stop string begins in the decoded completion, so where its text must be cut."""

    reason: str
    step: int
    stop_at: int | None = None
    error: str | None = None


Event = PromptScored | TokenEvent | Finished


@dataclass
class Completion:
    """The events of one choice added up."""

    index: int
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[TokenLogprob | None] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)  # the engine step each token was sampled at
    prompt_logprobs: list[TokenLogprob | None] | None = None
    finished: Finished | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, PromptScored):
            self.prompt_logprobs = event.logprobs
        elif isinstance(event, TokenEvent):
            self.token_ids.append(event.token_id)
            self.token_logprobs.append(event.logprob)
            self.steps.append(event.step)
        else:
            self.finished = event


class SequenceStream:
    """Where the engine sends one choice's events. Made inside a running asyncio loop, it is read with `async for`
    (events cross threads by call_soon_threadsafe); otherwise with a plain `for`, which blocks."""

    def __init__(self, index: int):
        self.index = index
        self.cancel_requested = threading.Event()
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self.events: asyncio.Queue | queue.SimpleQueue = asyncio.Queue()
        except RuntimeError:
            self.loop, self.events = None, queue.SimpleQueue()

    def put(self, event: Event) -> None:
        """Called by the engine's thread. A consumer whose loop has closed is gone: its sequence is cancelled."""
        if self.loop is None:
            self.events.put(event)
            return
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            self.cancel()

    def cancel(self) -> None:
        """Give up the sequence (a client that disconnected): the engine frees its slot at its next step."""
        self.cancel_requested.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested.is_set()

    def __iter__(self) -> Iterator[Event]:
        if self.loop is not None:
            raise TypeError("this stream was made inside an asyncio loop: read it with `async for`")
        while not isinstance(event := self.events.get(), Finished):
            yield event
        yield event

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self.loop is None:
            raise TypeError("this stream was made outside an asyncio loop: read it with a plain `for`")
        while not isinstance(event := await self.events.get(), Finished):
            yield event
        yield event

    def collect(self) -> Completion:
        """Wait for the sequence to finish; its events added up."""
        completion = Completion(self.index)
        for event in self:
            completion.add(event)
        return completion

    async def collect_async(self) -> Completion:
        completion = Completion(self.index)
        async for event in self:
            completion.add(event)
        return completion
