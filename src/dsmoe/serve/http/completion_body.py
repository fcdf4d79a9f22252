"""A /v1/completions request body, each field checked for its type and range (a bad one is a 400 naming it): the
fields of OpenAI's legacy completions, plus top_k."""

from __future__ import annotations

from dataclasses import dataclass

from dsmoe.serve.http.errors import ApiError
from dsmoe.serve.request import MAX_LOGPROBS

MAX_CHOICES = 16  # the most choices (n) one request may ask for
DEFAULT_MAX_TOKENS = 16  # OpenAI's default


@dataclass(frozen=True)
class CompletionBody:
    """prompts: each a text or a list of token ids. max_tokens None: as many as the model's context leaves."""

    model: str | None
    prompts: list[str | list[int]]
    max_tokens: int | None
    temperature: float
    top_p: float | None
    top_k: int | None
    seed: int | None
    stop: tuple[str, ...]
    n: int
    stream: bool
    logprobs: int | None
    echo: bool
    include_usage: bool  # stream_options.include_usage: a last streamed chunk with the usage


def bad(name: str, value, rule: str) -> ApiError:
    return ApiError(400, f"{name}={value!r} {rule}", param=name, code="invalid_value")


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(body: dict, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not is_integer(value):
        raise bad(name, value, "must be an integer")
    if value < low or (high is not None and value > high):
        raise bad(name, value, f"must be >= {low}" if high is None else f"must be in [{low}, {high}]")
    return value


def number(body: dict, name: str, default: float | None) -> float | None:
    value = body.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad(name, value, "must be a number")
    return value


def boolean(body: dict, name: str, path: str | None = None) -> bool:
    """body[name] (false when absent); a non-boolean is a 400 naming `path` (default: name)."""
    value = body.get(name, False)
    if value is not None and not isinstance(value, bool):
        raise bad(path or name, value, "must be true or false")
    return bool(value)


def prompts(body: dict) -> list[str | list[int]]:
    """A text, a list of texts, a list of token ids, or a list of such lists."""
    if "prompt" not in body:
        raise ApiError(400, "prompt is required", param="prompt", code="missing_field")
    value = body["prompt"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return value
        if all(is_integer(item) for item in value):
            return [value]
        if all(isinstance(item, list) and item and all(is_integer(token) for token in item) for item in value):
            return value
    raise bad("prompt", value, "must be a string, a list of strings, a list of token ids or a list of such lists "
                               "(none empty)")


def stop_strings(body: dict) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(text, str) and text for text in value):
        raise bad("stop", value, "must be a non-empty string or a list of them")
    return tuple(value)


def include_usage(body: dict) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("stream_options", options, "must be an object")
    return boolean(options, "include_usage", "stream_options.include_usage")


def parse_completion_body(body: dict) -> CompletionBody:
    temperature = number(body, "temperature", 1.0)
    temperature = 1.0 if temperature is None else temperature
    if temperature < 0:
        raise bad("temperature", temperature, "must be >= 0 (0 is greedy)")
    top_p = number(body, "top_p", None)
    if top_p is not None and not 0 < top_p <= 1:
        raise bad("top_p", top_p, "must be in (0, 1]")
    top_k = body.get("top_k")
    top_k = None if top_k in (-1, 0) else integer(body, "top_k", None, 1)  # -1 and 0 mean no top-k, as in vLLM
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("model", model, "must be a string")
    if body.get("best_of") not in (None, 1, body.get("n", 1)):
        raise bad("best_of", body["best_of"], "is not supported (leave it unset or equal to n)")
    return CompletionBody(model, prompts(body), integer(body, "max_tokens", DEFAULT_MAX_TOKENS, 0), temperature,
                          top_p, top_k, integer(body, "seed", None, 0), stop_strings(body),
                          integer(body, "n", 1, 1, MAX_CHOICES), boolean(body, "stream"),
                          integer(body, "logprobs", None, 0, MAX_LOGPROBS), boolean(body, "echo"),
                          include_usage(body))
