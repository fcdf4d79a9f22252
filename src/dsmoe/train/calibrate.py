"""How many optimizer steps fit in a time budget on this machine, measured, so a time-limited run's schedule
is sized in steps it will take (its warm-up too); should the run go slower than measured, the schedule
follows the clock instead (dsmoe.train.progress) and still anneals.

The probe takes the fastest of its timed steps: a run sized too long is cut by the clock with its schedule
still annealed, but one sized too short finishes early and leaves part of its budget unused (a 5-minute demo
whose median-of-3 probe came out 10% slow stopped after 4.2 minutes)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch

from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.routers import install_router_updates
from dsmoe.runs import RunConfig
from dsmoe.runtime import retain_freed_memory
from dsmoe.runtime.devices import resolve_device, resolve_dtype, synchronize
from dsmoe.train.optim import build_optimizer
from dsmoe.train.step import accumulate_gradients


def training_step(config: RunConfig, device: torch.device) -> Callable[[], None]:
    """One optimizer step of this config's model as the training loop takes it (forward/backward of every
    micro-batch, gradient clipping, the optimizer and its post-step hooks), on random tokens of its batch shape, on
    `device` in the train.dtype it resolves to there; it returns once the device has done the step."""
    model = DeepSeekMoEForCausalLM(config.model).to(device).train()
    optimizer = build_optimizer(model, config.train)
    install_router_updates(optimizer, model)
    shape = (config.train.batch_size * config.train.grad_accum, config.data.seq_len)
    tokens = torch.randint(0, config.model.vocab_size, shape).to(device)
    max_norm = config.train.grad_clip if config.train.grad_clip > 0 else math.inf
    dtype = resolve_dtype(config.train.dtype, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        accumulate_gradients(model, tokens, tokens, config.train.grad_accum, dtype)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        synchronize(device)
    return step


def seconds_per_step(config: RunConfig, timed_steps: int = 5, warmup_steps: int = 2) -> float:
    """Fastest wall time of a full optimizer step of this config's model, on random tokens, after warm-ups, on the
    device train.device names."""
    device = resolve_device(config.train.device, "train.device")
    if config.train.retain_freed_memory:
        retain_freed_memory()
    rng_state = torch.get_rng_state()  # the real run's weights and data order must not depend on this probe
    step = training_step(config, device)
    times = []
    for _ in range(warmup_steps + timed_steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    torch.set_rng_state(rng_state)
    return min(times[warmup_steps:])


def fit_steps_to_budget(config: RunConfig, minutes: float, eval_share: float = 0.02,
                        step_seconds: float | None = None) -> RunConfig:
    """A copy of config whose train.steps fill `minutes` of training, keeping eval_share for periodic evals and
    checkpoints (the demo's take about 2%; with 8% kept, a 5-minute demo finished its steps after 4.5 minutes). Erring
    long is safe: the clock then cuts the run with its schedule annealed. `step_seconds`: a step's time measured
    already (default: measured now, seconds_per_step)."""
    step_seconds = seconds_per_step(config) if step_seconds is None else step_seconds
    steps = int(minutes * 60 * (1 - eval_share) / step_seconds)
    fitted = copy.deepcopy(config)
    fitted.train.steps = max(steps, config.train.warmup_steps + 1)
    return fitted
