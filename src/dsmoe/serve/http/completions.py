"""/v1/completions: a checked body becomes one engine request per prompt (its n choices each a sequence), answered
whole or streamed as server-sent events (`data: {...}` chunks, then `data: [DONE]`)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tokenizers import Tokenizer

from dsmoe.serve.engine import Engine
from dsmoe.serve.http.choices import ChoiceOutput
from dsmoe.serve.http.completion_body import CompletionBody
from dsmoe.serve.http.errors import ApiError, error_body
from dsmoe.serve.http.metrics import ServerMetrics
from dsmoe.serve.request import CompletionRequest
from dsmoe.serve.stream import Event, Finished, SequenceStream
from dsmoe.serve.waiting import QueueFull

RETRY_AFTER_S = 1  # what a 429 tells the client to wait
DISCONNECT_POLL_S = 0.5  # how often an unstreamed request checks that its client is still there


@dataclass
class Choice:
    output: ChoiceOutput
    stream: SequenceStream


class CompletionRun:
    """The choices of one request, submitted together (all or none) to the engine, and their answer."""

    def __init__(self, body: CompletionBody, engine: Engine, tokenizer: Tokenizer, model_name: str,
                 metrics: ServerMetrics):
        self.body, self.engine, self.tokenizer, self.metrics = body, engine, tokenizer, metrics
        self.arrived = time.monotonic()
        self.head = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
                     "model": model_name}
        self.prompts = [self.tokenizer.encode(prompt).ids if isinstance(prompt, str) else prompt
                        for prompt in body.prompts]
        self.choices = self.submit([self.request(number, prompt_ids) for number, prompt_ids in enumerate(self.prompts)])

    def request(self, number: int, prompt_ids: list[int]) -> CompletionRequest:
        """Prompt `number`'s engine request, checked against the model (a 400 naming the lengths when too long)."""
        body, max_seq_len = self.body, self.engine.model.config.max_seq_len
        max_tokens = body.max_tokens if body.max_tokens is not None else max(0, max_seq_len - len(prompt_ids))
        which = f"prompt {number}: " if len(self.prompts) > 1 else ""
        try:
            request = CompletionRequest(prompt_ids, max_tokens, body.temperature, body.top_k, body.top_p, body.seed,
                                        body.stop, body.n, body.logprobs, body.echo)
            self.engine.check_fits(request)
        except ValueError as error:
            raise ApiError(400, f"{which}{error}", param="prompt", code="invalid_prompt") from error
        return request

    def submit(self, requests: list[CompletionRequest]) -> list[Choice]:
        choices: list[Choice] = []
        try:
            for number, request in enumerate(requests):
                prompt = self.body.prompts[number]
                prompt_text = prompt if isinstance(prompt, str) else self.tokenizer.decode(prompt)
                choices += [Choice(ChoiceOutput(number * request.n + stream.index, list(request.prompt_ids),
                                                prompt_text, self.tokenizer.decode, request.stop,
                                                request.logprobs is not None, request.echo), stream)
                            for stream in self.engine.submit(request)]
        except QueueFull as error:
            self.cancel(choices)
            raise ApiError(429, str(error), code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)}) from error
        return choices

    def cancel(self, choices: list[Choice] | None = None) -> None:
        for choice in self.choices if choices is None else choices:
            choice.stream.cancel()

    def usage(self) -> dict:
        prompt_tokens = sum(len(prompt) for prompt in self.prompts)
        completion_tokens = sum(len(choice.output.tokens) for choice in self.choices)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    async def answer(self, disconnected: Callable[[], Awaitable[bool]]) -> dict | None:
        """Wait for every choice; the whole response, or None when `disconnected()` says the client went away first
        (its sequences are cancelled, so their slots are freed at the engine's next step)."""
        gathering = asyncio.gather(*(self.events_of(choice) for choice in self.choices))
        try:
            while not gathering.done():
                await asyncio.wait([gathering], timeout=DISCONNECT_POLL_S)
                if not gathering.done() and await disconnected():
                    return None
            events = gathering.result()
        finally:
            self.cancel()  # a no-op for finished choices
            gathering.cancel()
        for choice_events in events:
            raise_failure(choice_events[-1])
        choices = [choice.output.answer(choice_events) for choice, choice_events in zip(self.choices, events)]
        self.metrics.request_latency.observe(time.monotonic() - self.arrived)
        return {**self.head, "choices": sorted(choices, key=lambda choice: choice["index"]), "usage": self.usage()}

    async def events_of(self, choice: Choice) -> list[Event]:
        return [event async for event in self.metrics.timed(choice.stream, self.arrived)]

    async def sse(self) -> AsyncIterator[str]:
        """Each choice's deltas as they come, one chunk each, then (stream_options.include_usage) one with the usage
        and no choices, then [DONE]; a failed choice ends the stream with an error event."""
        try:
            async for choice, event in self.merged():
                if isinstance(event, Finished) and event.reason == "error":
                    yield f"data: {json.dumps(error_body(event.error, 'server_error', code='engine_error'))}\n\n"
                    return
                delta = choice.output.update(event)
                if delta is not None:
                    yield f"data: {json.dumps({**self.head, 'choices': [delta]})}\n\n"
            if self.body.include_usage:
                yield f"data: {json.dumps({**self.head, 'choices': [], 'usage': self.usage()})}\n\n"
            yield "data: [DONE]\n\n"
            self.metrics.request_latency.observe(time.monotonic() - self.arrived)
        finally:
            self.cancel()

    async def merged(self) -> AsyncIterator[tuple[Choice, Event]]:
        """The events of all choices in the order they arrive."""
        arrived: asyncio.Queue[tuple[Choice, Event]] = asyncio.Queue()

        async def pump(choice: Choice) -> None:
            async for event in self.metrics.timed(choice.stream, self.arrived):
                await arrived.put((choice, event))

        tasks = [asyncio.create_task(pump(choice)) for choice in self.choices]
        unfinished = len(tasks)
        try:
            while unfinished:
                choice, event = await arrived.get()
                unfinished -= isinstance(event, Finished)
                yield choice, event
        finally:
            for task in tasks:
                task.cancel()


def raise_failure(last: Event) -> None:
    """A choice whose forward failed (or whose engine stopped) fails the whole answer."""
    if isinstance(last, Finished) and last.reason == "error":
        raise ApiError(500, f"the model failed on this request: {last.error}", code="engine_error")
