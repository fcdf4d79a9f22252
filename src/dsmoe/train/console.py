"""What a training run says: a start summary and a finish line on stdout (stable lines, for people and scripts),
and a progress bar on stderr that follows the schedule's position, so that with a time budget its ETA is the
budget's, not the steps'."""

from __future__ import annotations

import shlex
from pathlib import Path

from tqdm import tqdm

from dsmoe.config import TrainConfig
from dsmoe.model import count_params
from dsmoe.runs import RunConfig
from dsmoe.train.progress import TrainingProgress
from dsmoe.train.save_schedule import doubling_saves_min


def start_summary(config: RunConfig, train_tokens: int, val_tokens: int, device: str, world_size: int,
                  run_dir: Path) -> str:
    """A few aligned lines: the model's size, the data, the budget, the checkpoints, where it trains and into what."""
    params, settings = count_params(config.model), config.train
    processes = f" x {world_size} processes" if world_size > 1 else ""
    rows = {
        "parameters": f"{params.total / 1e6:.2f}M total, {params.activated / 1e6:.2f}M activated per token",
        "data": f"{train_tokens:,} train tokens, {val_tokens:,} val tokens",
        "budget": budget_text(settings) + f", {settings.batch_size * settings.grad_accum} x {config.data.seq_len} "
                                          "tokens per step",
        "saves": checkpoint_text(settings),
        "device": f"{device}{processes}, {settings.dtype}",
        "run directory": str(run_dir),
    }
    width = max(map(len, rows))
    return "\n".join(f"{label:<{width}}  {text}" for label, text in rows.items())


def minutes_text(minutes: float) -> str:
    """4.77688 -> "4.78", 2.0 -> "2", 1234.5 -> "1,234.5": two decimals at most, none that are zero."""
    return f"{minutes:,.2f}".rstrip("0").rstrip(".")


def budget_text(settings: TrainConfig) -> str:
    if settings.time_budget_min is None:
        return f"{settings.steps:,} steps"
    return f"{settings.steps:,} steps or {minutes_text(settings.time_budget_min)} min, whichever comes first"


def checkpoint_text(settings: TrainConfig) -> str:
    rules = [f"every {settings.save_every:,} steps"] if settings.save_every else []
    rules += [time_rule(settings.save_every_min)] if settings.save_every_min else []
    when = (" and ".join(rules) + ", and at the end") if rules else "at the end"
    return f"{when}; the last {settings.keep_last} kept"


def time_rule(every_min: float) -> str:
    early = doubling_saves_min(every_min)
    if not early:
        return f"every {every_min:g} min"
    return f"after {', '.join(f'{m:g}' for m in early)} min, then every {every_min:g} min"


def resume_line(step: int, checkpoint: Path) -> str:
    return f"resuming from step {step} (checkpoint {checkpoint.name})"


def finish_line(stopped: str | None, step: int, steps: int, run_dir: Path) -> str:
    """Why training stopped; a signal's line keeps "stopped at step N (SIGNAL)" and says how to go on."""
    if stopped is None:
        return f"finished: {step}/{steps} steps"
    if stopped == "time_budget":
        return f"stopped by the time budget at step {step} (of {steps} planned)"
    return f"stopped at step {step} ({stopped}); resume with: dsmoe train --out {shlex.quote(str(run_dir))} --resume"


class ProgressBar:
    """tqdm over the schedule's position (TrainingProgress.position): the step without a time budget, the larger of
    the step and the time spent in steps with one, so the bar fills and its ETA counts down to whichever ends the
    run. The step reached is in the postfix."""

    FORMAT = "{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"

    def __init__(self, progress: TrainingProgress, step: int, enabled: bool):
        self.progress, self.steps = progress, progress.cfg.steps
        self.bar = tqdm(total=self.steps, initial=self.position(step), desc="train", bar_format=self.FORMAT,
                        dynamic_ncols=True, disable=not enabled)

    def position(self, step: int) -> float:
        return min(self.progress.position(step), self.steps)

    def update(self, step: int, lm_loss: float, aux_losses: dict[str, float], tokens_per_s: float) -> None:
        aux = {"aux": f"{sum(aux_losses.values()):.4f}"} if aux_losses else {}
        self.bar.set_postfix({"step": f"{step}/{self.steps}", "lm_loss": f"{lm_loss:.3f}", **aux,
                              "tok_s": f"{tokens_per_s:,.0f}"}, refresh=False)
        self.bar.update(self.position(step) - self.bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
