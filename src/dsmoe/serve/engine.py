"""The continuous-batching engine: one scheduler loop owns the model. Every step frees the slots of finished and
cancelled sequences, admits waiting ones (their prefill samples their first token), and decodes one token for
every running sequence, so a request never waits for a batch to finish."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from dsmoe.inference.generate import left_pad
from dsmoe.model.transformer import DeepSeekMoEForCausalLM
from dsmoe.serve.load_counter import ExpertLoad
from dsmoe.serve.logprobs import prompt_logprobs, token_logprobs
from dsmoe.serve.packing import CachedRow, pack_rows
from dsmoe.serve.request import CompletionRequest
from dsmoe.serve.sequence import Sequence, next_tokens
from dsmoe.serve.stream import PromptScored, SequenceStream, TokenEvent
from dsmoe.serve.waiting import WaitingQueue

IDLE_WAIT_S = 0.5  # how long an idle loop sleeps before looking again (a submit wakes it at once)


@dataclass(frozen=True)
class EngineConfig:
    """max_batch: the most sequences decoded together (the slots). Default 8.
    max_queue: the most sequences waiting for a slot; a submit beyond it raises QueueFull. Default 64.
    eos_token_id: a sequence stops after sampling it (it stays in its tokens); None: no such token. Default None.
    """

    max_batch: int = 8
    max_queue: int = 64
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch={self.max_batch} must be >= 1")
        if self.max_queue < 1:
            raise ValueError(f"max_queue={self.max_queue} must be >= 1")


class Engine:
    """Serves completion requests on `model`. Either start() a background thread that steps while there is work,
    or call step() yourself (nothing else may use the model meanwhile). detokenize (ids -> text) is needed only
    for stop strings; every step runs inside compute_context() (a run's autocast: it is per thread, so the engine's
    thread enters it itself). A sequence samples exactly as dsmoe.inference.generate does alone, so at temperature 0 (or
    with a seed) its tokens are those of `generate` for its prompt, whatever else runs beside it (up to the float
    rounding a padded batch adds: ~1e-7 in the logits)."""

    def __init__(self, model: DeepSeekMoEForCausalLM, config: EngineConfig = EngineConfig(),
                 detokenize: Callable[[list[int]], str] | None = None,
                 compute_context: Callable[[], AbstractContextManager] = contextlib.nullcontext):
        self.model, self.config, self.detokenize = model.eval(), config, detokenize
        self.compute_context = compute_context
        self.device = model.lm_head.weight.device
        self.queue = WaitingQueue(config.max_queue)
        self.running: list[Sequence] = []
        self.load = ExpertLoad(model.config.moe_layers, model.config.n_routed_experts, self.device)
        self.steps = 0
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def submit(self, request: CompletionRequest) -> list[SequenceStream]:
        """Queue the request's n choices; one stream each. Raises QueueFull when they do not fit, ValueError when
        the request does not fit the model."""
        self.check_fits(request)
        seeds = [request.seed + i if request.seed is not None else secrets.randbits(63) for i in range(request.n)]
        streams = [SequenceStream(i) for i in range(request.n)]
        self.queue.put_all([Sequence(request, stream, seed, self.device, self.detokenize)
                            for stream, seed in zip(streams, seeds)])
        return streams

    def check_fits(self, request: CompletionRequest) -> None:
        config = self.model.config
        if len(request.prompt_ids) + request.max_tokens > config.max_seq_len:
            raise ValueError(f"a prompt of {len(request.prompt_ids)} tokens and max_tokens={request.max_tokens} "
                             f"exceed the model's max_seq_len={config.max_seq_len}")
        if not all(0 <= token < config.vocab_size for token in request.prompt_ids):
            raise ValueError(f"prompt_ids holds ids outside the vocabulary [0, {config.vocab_size})")
        if request.stop and self.detokenize is None:
            raise ValueError(f"stop={list(request.stop)} needs an engine with a detokenizer (Engine(detokenize=...))")

    @torch.no_grad()
    def step(self) -> None:
        """Free finished and cancelled slots, admit waiting sequences, decode one token for every running one."""
        self.steps += 1
        for sequence in self.queue.take_cancelled() + [s for s in self.running if s.stream.cancelled and not s.done]:
            sequence.finish("cancelled", self.steps)
        live = [sequence for sequence in self.running if not sequence.done]
        with self.compute_context():
            newcomers = self.admit(self.queue.take(self.config.max_batch - len(live)))
            try:
                self.regroup(live + newcomers)
                self.decode()
            except Exception as error:  # the model failed this step: its sequences fail, the engine goes on
                self.fail(self.running, error)
                self.running = []

    def admit(self, sequences: list[Sequence]) -> list[Sequence]:
        """Prefill the sequences together (left-padded), sample each one's first token; those still running."""
        if not sequences:
            return []
        try:
            self.prefill(sequences)
        except Exception as error:  # only the sequences of this prefill fail
            self.fail(sequences, error)
        return [sequence for sequence in sequences if not sequence.done]

    def prefill(self, sequences: list[Sequence]) -> None:
        prompts = [list(sequence.request.prompt_ids) for sequence in sequences]
        input_ids_BL, real_BL = left_pad(prompts, self.device)
        attention_mask_BL = real_BL if len({len(prompt) for prompt in prompts}) > 1 else None
        cache = self.model.new_cache(max_len=input_ids_BL.shape[1])
        out = self.model(input_ids_BL, cache=cache, attention_mask_BL=attention_mask_BL)
        self.load.add(out.router_stats)
        for row, (sequence, prompt) in enumerate(zip(sequences, prompts)):
            sequence.cache, sequence.row, sequence.n_cached = cache, row, len(prompt)
            if sequence.request.echo:
                scores = prompt_logprobs(out.logits[row, -len(prompt):], prompt, sequence.request.top_logprobs)
                sequence.stream.put(PromptScored(scores, self.steps))
            if sequence.request.max_tokens == 0:
                sequence.finish("length", self.steps)
        generating = [row for row, sequence in enumerate(sequences) if not sequence.done]
        self.sample([sequences[row] for row in generating], out.logits[generating, -1])

    def regroup(self, sequences: list[Sequence]) -> None:
        """Make `sequences` the running batch, repacking the KV cache when the batch changed."""
        if sequences == self.running:
            return
        self.running = sequences
        if not sequences:
            return
        rows = [CachedRow(sequence.cache, sequence.row, sequence.n_cached) for sequence in sequences]
        longest = max(row.n_cached for row in rows)
        most_steps = max(sequence.request.max_tokens - len(sequence.tokens) for sequence in sequences)
        # the cache never outgrows the longest running row: it is repacked as soon as that row ends
        cache = pack_rows(rows, min(longest + most_steps, self.model.config.max_seq_len))
        for row, sequence in enumerate(sequences):
            sequence.cache, sequence.row = cache, row

    def decode(self) -> None:
        """One token for every running sequence, from their newest tokens."""
        if not self.running:
            return
        input_ids_B1 = torch.tensor([[sequence.tokens[-1]] for sequence in self.running], device=self.device)
        out = self.model(input_ids_B1, cache=self.running[0].cache)
        self.load.add(out.router_stats)
        for sequence in self.running:
            sequence.n_cached += 1
        self.sample(self.running, out.logits[:, -1])

    def sample(self, sequences: list[Sequence], logits_BV: torch.Tensor) -> None:
        """Draw each sequence's next token from logits_BV's row, send it, and finish the sequences it ends."""
        tokens = next_tokens(logits_BV, sequences)
        scored = [row for row, sequence in enumerate(sequences) if sequence.request.logprobs is not None]
        logprobs = dict(zip(scored, token_logprobs(logits_BV[scored], [tokens[row] for row in scored],
                                                   [sequences[row].request.top_logprobs for row in scored])
                            if scored else []))
        for row, (sequence, token) in enumerate(zip(sequences, tokens)):
            sequence.tokens.append(token)
            sequence.stream.put(TokenEvent(token, logprobs.get(row), self.steps))
            ending = sequence.ending(self.config.eos_token_id)
            if ending is not None:
                reason, stop_at = ending
                sequence.finish(reason, self.steps, stop_at)

    def fail(self, sequences: list[Sequence], error: BaseException) -> None:
        for sequence in sequences:
            if not sequence.done:
                sequence.finish("error", self.steps, error=f"{type(error).__name__}: {error}")

    @property
    def n_running(self) -> int:
        return sum(not sequence.done for sequence in self.running)

    @property
    def n_waiting(self) -> int:
        return len(self.queue)

    def start(self) -> Engine:
        """Step in a background thread while there is work, until stop()."""
        if self.thread is not None:
            raise RuntimeError("the engine is already started")
        self.stopping.clear()
        self.thread = threading.Thread(target=self.loop, name="dsmoe-serve-engine", daemon=True)
        self.thread.start()
        return self

    def loop(self) -> None:
        while not self.stopping.is_set():
            if self.running or self.n_waiting:  # a finished batch is released by one more step
                self.step()
            else:
                self.queue.wait(IDLE_WAIT_S)

    def stop(self) -> None:
        """End the background thread after its current step; sequences still waiting or running fail."""
        self.stopping.set()
        self.queue.wake()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        self.fail(self.running + self.queue.take(len(self.queue)), RuntimeError("the engine stopped"))
        self.running = []

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
