"""The training loop: data, model, AdamW, schedule, metrics, evaluation, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from dsmoe.atomic import atomic_file, remove_temporaries
from dsmoe.data import PreparedData, TrainBatches, prepare_data, token_byte_lengths
from dsmoe.eval import EvalResult, evaluate_domains
from dsmoe.model import DeepSeekMoEForCausalLM, apply_activation_checkpointing
from dsmoe.model.moe import expert_kernel_summary
from dsmoe.config import ParallelConfig, TrainConfig
from dsmoe.parallel.ranks import ParallelRanks, SingleProcess, is_writer_rank, join_ranks, rank_device
from dsmoe.routers import discard_router_updates, install_router_updates
from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.runs.layout import CheckpointDir
from dsmoe.runs.lock import lock_run
from dsmoe.runs.metrics_log import MetricsLog
from dsmoe.runtime import retain_freed_memory
from dsmoe.runtime.devices import DTYPE_NAMES, peak_memory_mb, reset_peak_memory, resolve_dtype, to_device
from dsmoe.train.console import ProgressBar, finish_line, resume_line, start_summary
from dsmoe.train.metrics import eval_record, expert_metrics
from dsmoe.train.optim import build_optimizer, build_scheduler, load_optimizer_state
from dsmoe.train.progress import TrainingProgress
from dsmoe.train.resume import resolve_run_config
from dsmoe.train.save_schedule import save_interval_min
from dsmoe.train.step import StepResult, accumulate_gradients
from dsmoe.train.tensorboard import TensorBoardLog, summary_writer_class


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped_early: str | None
    final_eval: EvalResult | None
    writer: bool = True  # this process wrote the run (the only one, or rank 0 of a torchrun job)


class NonFiniteLossError(RuntimeError):
    pass


class StopRequest:
    """Turns Ctrl-C (SIGINT) and SIGTERM into a request honoured at the next step boundary."""

    def __init__(self):
        self.reason: str | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(config: RunConfig | None, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train (or resume) a run in `run_dir`; returns where it stopped and the final evaluation. Under torchrun every
    rank calls it (with the same arguments); rank 0 alone writes the run directory. What can refuse the run is
    checked before the ranks join: the layout, the device and the config on every rank, the run directory, the
    checkpoint to resume and the data on rank 0; so a refusal ends each rank before any collective."""
    run_dir = RunDir(run_dir)
    layout, device_name = layout_of(config, run_dir, resume)
    device = rank_device(layout, device_name)
    if config is not None:  # "auto" made concrete for this device before a resume compares it with the run's
        config = with_resolved_dtype(config, device)
        expert_kernel_line(config, device)  # an expert kernel this device lacks is refused before any work
    writer = is_writer_rank(layout)
    # before anything in the run directory is written, until the last write
    with lock_run(run_dir) if writer else contextlib.nullcontext():
        prepared = prepare_run(config, run_dir, resume) if writer else None
        ranks = join_ranks(layout, device)
        try:
            return train_on_ranks(ranks, prepared, run_dir, resume)
        finally:
            ranks.close()


def layout_of(config: RunConfig | None, run_dir: RunDir, resume: bool) -> tuple[ParallelConfig, str]:
    """The [parallel] section and train.device to start the processes with: the given config's, else the resumed
    run's."""
    if config is None and resume and run_dir.config_path.is_file():
        config = RunConfig.load(run_dir.config_path)
    if config is None:
        return ParallelConfig(), TrainConfig.device
    return config.parallel, config.train.device


def train_on_ranks(ranks: SingleProcess | ParallelRanks, prepared: PreparedRun | None, run_dir: RunDir,
                   resume: bool) -> TrainResult:
    """Train on the joined ranks what rank 0 prepared (the others get None and rank 0's config)."""
    if ranks.is_writer:
        config, data = prepared.config, prepared.data
    config = ranks.broadcast(config if ranks.is_writer else None)  # with the corpus's identity fixed by rank 0
    config = with_resolved_dtype(config, ranks.device)  # a resumed run's own dtype, checked against this device
    if not ranks.is_writer:  # the tokenizer and token caches rank 0 wrote, read only
        data = prepare_data(config.data, run_dir.tokenizer_path, config.model.vocab_size, reuse_tokenizer=True)
    if config.train.retain_freed_memory:
        retain_freed_memory()
    torch.manual_seed(config.train.seed)
    with torch.device("cpu"):  # initialised on the host from the seed: every device starts from the same weights
        model = ranks.prepare(DeepSeekMoEForCausalLM(config.model))
    apply_activation_checkpointing(model, config.train.activation_checkpointing)
    optimizer = build_optimizer(model, config.train)
    progress = TrainingProgress(config.train)
    scheduler = build_scheduler(optimizer, config.train, progress.position)
    install_router_updates(optimizer, model, ranks.reduce_sum)
    start_step = restore(ranks, prepared, model, optimizer, scheduler, progress) if resume else 0
    if ranks.is_writer:  # (the kernel said once the run has started: a refusal before it stays one line)
        with atomic_file(run_dir.config_path) as temporary:
            temporary.write_text(config.to_toml())
        print(expert_kernel_line(config, ranks.device), file=sys.stderr)
        print(start_summary(config, len(data.train.tokens), len(data.val.tokens), str(ranks.device),
                            ranks.world_size, run_dir.path), flush=True)
    trainer = Trainer(config, run_dir, model, optimizer, scheduler, data, start_step, progress, ranks)
    return trainer.run()


def expert_kernel_line(config: RunConfig, device: torch.device) -> str:
    return expert_kernel_summary(config.model, device, DTYPE_NAMES[config.train.dtype])


def with_resolved_dtype(config: RunConfig, device: torch.device) -> RunConfig:
    return replace(config, train=replace(config.train, dtype=resolve_dtype(config.train.dtype, device)))


@dataclass
class PreparedRun:
    """What rank 0 readies before the ranks join: the config, its data and, on resume, the checkpoint."""

    config: RunConfig
    data: PreparedData
    checkpoint: CheckpointDir | None


def prepare_run(config: RunConfig | None, run_dir: RunDir, resume: bool) -> PreparedRun:
    """The config to train with (checked against the run directory), its prepared data and, on resume, the newest
    intact checkpoint (corrupt newer ones, named on stderr, are moved aside: training from it writes them again)."""
    config, changes = resolve_run_config(config, run_dir, resume)
    remove_temporaries(*run_dir.written_atomically)  # of writes killed midway: none is live here
    if config.train.tensorboard:
        summary_writer_class()  # a missing tensorboard package fails here, before any data is prepared
    data = prepare_data(config.data, run_dir.tokenizer_path, config.model.vocab_size, reuse_tokenizer=resume)
    config = replace(config, data=data.config)  # the corpus's identity (absolute path, sha256), fixed at start
    checkpoint = ckpt.newest_intact_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        ckpt.set_aside_checkpoints_after(run_dir, checkpoint)
    if changes:  # only now: the corpus could still have refused the resume
        print("--resume: applying " + "; ".join(changes))
    return PreparedRun(config, data, checkpoint)


def restore(ranks: SingleProcess | ParallelRanks, prepared: PreparedRun | None, model, optimizer, scheduler,
            progress: TrainingProgress) -> int:
    """Load the checkpoint rank 0 chose (prepare_run): its weights, optimizer, schedule, training time and RNG;
    return its step. Every rank loads its own pieces of it."""
    checkpoint = CheckpointDir(ranks.broadcast(prepared.checkpoint.path if ranks.is_writer else None))
    ranks.load_weights(checkpoint, model)
    state = ckpt.load_trainer_state(checkpoint)
    if ranks.is_writer:
        print(resume_line(state["step"], checkpoint.path))
    progress.load_state_dict(state.get("progress", {"elapsed_s": 0.0}))  # older checkpoints did not keep it
    optimizer_state = ranks.local_optimizer_state(state["optimizer"], optimizer, model)
    load_optimizer_state(optimizer, scheduler, optimizer_state, state["scheduler"])  # with the config's settings
    torch.set_rng_state(state["rng"])
    return state["step"]


class Trainer:
    def __init__(self, config: RunConfig, run_dir: RunDir, model, optimizer, scheduler, data, start_step: int,
                 progress: TrainingProgress, ranks: SingleProcess | ParallelRanks):
        self.config, self.run_dir, self.ranks = config, run_dir, ranks
        self.model, self.optimizer, self.scheduler, self.data = model, optimizer, scheduler, data
        self.step, self.progress = start_step, progress
        self.forward_model = torch.compile(model) if config.train.compile else model
        self.batches = TrainBatches(data.train.tokens, config.data.seq_len,
                                    config.train.batch_size * config.train.grad_accum,
                                    config.train.seed, config.data.shift_windows)
        self.token_bytes = token_byte_lengths(data.tokenizer)
        self.val_tokens = {domain: data.val.domain_tokens(domain) for domain in data.val.domains}
        self.logs = [MetricsLog(run_dir.metrics_path, resume_step=start_step)] if ranks.is_writer else []
        if config.train.tensorboard and ranks.is_writer:
            self.logs.append(TensorBoardLog(run_dir.tensorboard_dir, resume_step=start_step))
        self.nonfinite_streak = 0
        self.saved_at_s = 0.0  # training time at the last checkpoint, or at this session's start
        self.session_start_s = 0.0  # training time when this session started (a resumed run's is its checkpoint's)

    def run(self) -> TrainResult:
        """Train to the last step or a stop request, save, evaluate; the logs are closed on every way out."""
        try:
            stopped = self.train_steps()
            self.save()
            if self.ranks.is_writer:
                print(finish_line(stopped, self.step, self.config.train.steps, self.run_dir.path), flush=True)
            interrupted = stopped is not None and stopped != "time_budget"
            final = None if interrupted else self.evaluate(max_batches=None)
            if final is not None:
                self.log(eval_record(self.step, final, final=True))
            return TrainResult(self.run_dir.path, self.step, stopped, final, self.ranks.is_writer)
        finally:
            for log in self.logs:
                log.close()

    def train_steps(self) -> str | None:
        """Optimizer steps until train.steps, a signal or the time budget; returns why it stopped early."""
        self.progress.start()
        self.session_start_s = self.saved_at_s = self.progress.elapsed_s()
        stopped = self.over_time_budget()  # a resumed run may have spent its budget already
        with ProgressBar(self.progress, self.step, self.ranks.is_writer) as bar, StopRequest() as stop:
            while self.step < self.config.train.steps and stopped is None:
                self.train_one_step(bar)
                stopped = self.agreed_stop(stop.reason or self.over_time_budget())
        return stopped

    def agreed_stop(self, reason: str | None) -> str | None:
        """Every rank stops at the same step, for the same reason (a signal reaches each process on its own): the
        first rank's that has one."""
        if not self.ranks.agree(reason is not None):
            return None
        return next(reason for reason in self.ranks.gather(reason) if reason is not None)

    def log(self, record: dict) -> None:
        """The same record to metrics.jsonl and, when on, TensorBoard."""
        for log in self.logs:
            log.write(record)

    def over_time_budget(self) -> str | None:
        return "time_budget" if self.progress.out_of_time() else None

    def train_one_step(self, bar: ProgressBar) -> None:
        started = time.perf_counter()
        inputs, labels = (to_device(batch, self.ranks.device) for batch in self.batches.batch(self.step))
        reset_peak_memory(self.ranks.device)
        self.model.train()
        self.ranks.reset_traffic(self.model)  # count this step's, not an evaluation's
        settings = self.config.train
        result = accumulate_gradients(self.forward_model, inputs, labels, settings.grad_accum, settings.dtype,
                                      self.ranks.world_size, self.ranks.rank, self.ranks.reduce_sum)
        traffic = self.ranks.traffic(self.model, self.config.model.moe_layers)
        max_norm = settings.grad_clip if settings.grad_clip > 0 else math.inf
        grad_norm = self.ranks.clip_grad_norm(self.model, max_norm)
        if not (math.isfinite(result.loss) and math.isfinite(grad_norm)):
            self.skip_step(result.loss, grad_norm)
            return
        self.nonfinite_streak = 0
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        tokens_per_s = inputs.numel() / (time.perf_counter() - started)
        self.log_step(result, lr, grad_norm, tokens_per_s, peak_memory_mb(self.ranks.device), traffic)
        bar.update(self.step, result.lm_loss, result.aux_losses, tokens_per_s)
        self.maybe_eval_and_save()

    def skip_step(self, loss: float, grad_norm: float) -> None:
        """Drop this step's gradients; stop after max_nonfinite in a row (the last checkpoint stays intact)."""
        self.optimizer.zero_grad(set_to_none=True)
        discard_router_updates(self.model)
        self.nonfinite_streak += 1
        warnings.warn(f"step {self.step}: non-finite loss {loss} / grad norm {grad_norm}; step skipped "
                      f"({self.nonfinite_streak}/{self.config.train.max_nonfinite} in a row)", stacklevel=2)
        if self.nonfinite_streak >= self.config.train.max_nonfinite:
            latest = self.run_dir.latest_checkpoint()
            raise NonFiniteLossError(f"{self.nonfinite_streak} consecutive non-finite losses at step {self.step}; "
                                     f"stopping. Last good checkpoint: {latest}")

    def log_step(self, result: StepResult, lr: float, grad_norm: float, tokens_per_s: float, memory_mb: float,
                 traffic: dict | None) -> None:
        self.log({"step": self.step, "loss": result.loss, "lm_loss": result.lm_loss, **result.aux_losses,
                  "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens_per_s, "peak_memory_mb": memory_mb,
                  "experts": expert_metrics(self.config.model.moe_layers, result.router_stats),
                  **({"traffic": traffic} if traffic is not None else {})})

    def maybe_eval_and_save(self) -> None:
        settings = self.config.train
        if settings.eval_every and self.step % settings.eval_every == 0 and self.step < settings.steps:
            self.log(eval_record(self.step, self.evaluate(settings.eval_batches), final=False))
        if self.step < settings.steps and self.save_due():
            self.save()

    def save_due(self) -> bool:
        """A checkpoint every save_every steps, and by time: after 1, 2, 4, ... minutes of this session, then every
        save_every_min minutes (dsmoe.train.save_schedule); agreed by every rank, as each reads its own clock."""
        settings = self.config.train
        by_steps = settings.save_every > 0 and self.step % settings.save_every == 0
        since_save_s = self.progress.elapsed_s() - self.saved_at_s
        interval_min = save_interval_min(settings.save_every_min, (self.saved_at_s - self.session_start_s) / 60)
        by_time = settings.save_every_min > 0 and since_save_s >= 60 * interval_min
        return self.ranks.agree(by_steps or by_time)

    def evaluate(self, max_batches: int | None) -> EvalResult:
        return evaluate_domains(self.model, self.val_tokens, self.config.data.seq_len,
                                self.config.train.batch_size, self.token_bytes, max_batches)

    def save(self) -> None:
        """A checkpoint of full single-process tensors, whatever the layout (dsmoe.parallel.state); rank 0 writes."""
        weights = self.ranks.model_state(self.model)
        state = {"step": self.step, "optimizer": self.ranks.optimizer_state(self.optimizer, self.model),
                 "scheduler": self.scheduler.state_dict(), "progress": self.progress.state_dict(),
                 "rng": torch.get_rng_state()}
        if self.ranks.is_writer:
            ckpt.save_checkpoint(self.run_dir, self.step, weights, state, self.config.to_toml(),
                                 self.config.train.keep_last)
        self.ranks.barrier()  # no rank goes on (or exits) before the checkpoint is written
        self.saved_at_s = self.progress.elapsed_s()
