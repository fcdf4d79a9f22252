"""Where each file of a run directory lives; every name below is written here and nowhere else.

    RUN/config.toml                 the run's RunConfig ([model], [data], [train])
    RUN/tokenizer.json              the tokenizer the run trained or reused
    RUN/metrics.jsonl               one JSON record per step and per evaluation
    RUN/tensorboard/                TensorBoard event files (train.tensorboard=true)
    RUN/loss.png                    the loss curve the demo plots
    RUN/train.lock                  held (flock) by the process training the run; names it (runs.lock)
    RUN/analysis/report/            what `dsmoe analyze` writes by default: report.html, numbers.json, PNG plots
    RUN/analysis/traces/NAME/       one routing trace per checkpoint and data set (analysis.trace_store)
    RUN/checkpoints/step_00000100/  one checkpoint: model.safetensors, trainer_state.pt, config.toml and
                                    manifest.json, the size and sha256 of each of the others (runs.checkpoint)

Both classes only name paths: they read nothing but directory listings and write nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.toml"  # in the run and in each checkpoint (the config that checkpoint was trained with)
CHECKPOINT_PREFIX = "step_"
SET_ASIDE_PREFIX = "corrupt_"  # a corrupt checkpoint moved out of the list, kept for inspection


def entry(name: str) -> property:
    """A read-only attribute: the path of `name` inside the directory (its `path`)."""
    return property(lambda directory: directory.path / name, doc=f"the path of {name} in this directory")


@dataclass
class CheckpointDir:
    """One checkpoint directory (a str path is accepted): safetensors weights, the trainer state, the config
    it was saved with and the manifest that vouches for them."""

    path: Path
    weights_path = entry("model.safetensors")
    trainer_state_path = entry("trainer_state.pt")
    config_path = entry(CONFIG)
    manifest_path = entry("manifest.json")

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def step(self) -> int:
        """The optimizer step it was saved at, read from its name (step_00000100 -> 100)."""
        return int(self.path.name.removeprefix(CHECKPOINT_PREFIX))

    def __str__(self) -> str:
        return str(self.path)


@dataclass
class RunDir:
    """A run directory (a str path is accepted); see the module docstring for what it holds."""

    path: Path
    config_path = entry(CONFIG)
    tokenizer_path = entry("tokenizer.json")
    metrics_path = entry("metrics.jsonl")
    tensorboard_dir = entry("tensorboard")
    loss_plot_path = entry("loss.png")
    lock_path = entry("train.lock")
    checkpoints_dir = entry("checkpoints")
    analysis_report_dir = entry("analysis/report")
    traces_dir = entry("analysis/traces")

    def __post_init__(self):
        self.path = Path(self.path)

    def checkpoint(self, step: int) -> CheckpointDir:
        """The checkpoint of `step`, whether written yet or not (zero-padded, so names sort by step)."""
        return CheckpointDir(self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{step:08d}")

    def checkpoints(self) -> list[CheckpointDir]:
        """The complete checkpoints, oldest first: the directories named step_ and digits only (a temporary one
        being written starts with "." and is skipped, and so is a copy such as step_00000100.bak)."""
        if not self.checkpoints_dir.is_dir():
            return []
        return [CheckpointDir(path) for path in sorted(self.checkpoints_dir.iterdir())
                if path.is_dir() and re.fullmatch(f"{CHECKPOINT_PREFIX}[0-9]+", path.name)]

    @property
    def written_atomically(self) -> tuple[Path, ...]:
        """What training writes through dsmoe.atomic (the checkpoints as a glob): where a write killed midway may
        have left its temporary."""
        return (self.config_path, self.tokenizer_path, self.metrics_path,
                self.checkpoints_dir / f"{CHECKPOINT_PREFIX}*")

    def set_aside_path(self, checkpoint: CheckpointDir) -> Path:
        """Where a corrupt `checkpoint` is moved so that it is no longer listed (a name not taken yet)."""
        path = self.checkpoints_dir / f"{SET_ASIDE_PREFIX}{checkpoint.path.name}"
        tries = 1
        while path.exists():
            path, tries = path.with_name(f"{SET_ASIDE_PREFIX}{checkpoint.path.name}.{tries}"), tries + 1
        return path

    def latest_checkpoint(self) -> CheckpointDir | None:
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None
