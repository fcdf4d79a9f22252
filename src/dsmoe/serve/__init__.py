"""Serving: a continuous-batching engine that streams each sequence's tokens as they are decoded, with per-request
sampling, log-probabilities, stop strings and live expert-load counts (the HTTP server is built on it)."""

from dsmoe.serve.engine import Engine, EngineConfig
from dsmoe.serve.load_counter import ExpertLoad, LoadSnapshot
from dsmoe.serve.logprobs import TokenLogprob
from dsmoe.serve.request import MAX_LOGPROBS, CompletionRequest
from dsmoe.serve.stream import Completion, Finished, PromptScored, SequenceStream, TokenEvent
from dsmoe.serve.waiting import QueueFull

__all__ = ["MAX_LOGPROBS", "Completion", "CompletionRequest", "Engine", "EngineConfig", "ExpertLoad", "Finished",
           "LoadSnapshot", "PromptScored", "QueueFull", "SequenceStream", "TokenEvent", "TokenLogprob"]
