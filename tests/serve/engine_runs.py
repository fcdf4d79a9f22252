"""Helpers of the serving tests: a tiny model's engine stepped by hand, and prompts of different lengths."""

from __future__ import annotations

from dsmoe.serve import Completion, CompletionRequest, Engine, EngineConfig, SequenceStream

PROMPTS = [[5, 17, 260, 3, 99, 7, 8], [11, 12], [300, 301, 302, 303], [42], [1, 2, 3, 4, 5, 6, 7, 8, 9],
           [77, 78], [400], [9, 9, 9]]


def greedy(prompt: list[int], max_tokens: int = 8, **fields) -> CompletionRequest:
    return CompletionRequest(prompt, max_tokens=max_tokens, temperature=0.0, **fields)


def step_until_idle(engine: Engine, limit: int = 200) -> None:
    for _ in range(limit):
        if not (engine.n_running or engine.n_waiting):
            return
        engine.step()
    raise AssertionError(f"the engine still had work after {limit} steps")


def run_all(engine: Engine, requests: list[CompletionRequest]) -> list[Completion]:
    """Submit every request (first choice only), step until all finish, and collect them."""
    streams: list[SequenceStream] = [engine.submit(request)[0] for request in requests]
    step_until_idle(engine)
    return [stream.collect() for stream in streams]


def engine_for(model, **config) -> Engine:
    return Engine(model, EngineConfig(**config))
