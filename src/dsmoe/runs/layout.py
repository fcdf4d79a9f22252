"""Where each file of a run directory lives; every name below is written here and nowhere else.

    RUN/config.toml                 the run's RunConfig ([model], [data], [train])
    RUN/tokenizer.json              the tokenizer the run trained or reused
    RUN/metrics.jsonl               one JSON record per step and per evaluation
    RUN/tensorboard/                TensorBoard event files (train.tensorboard=true)
    RUN/loss.png                    the loss curve the demo plots
    RUN/checkpoints/step_00000100/  one checkpoint: model.safetensors, trainer_state.pt, config.toml

Both classes only name paths: they read nothing but directory listings and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.toml"  # in the run and in each checkpoint (the config that checkpoint was trained with)
CHECKPOINT_PREFIX = "step_"


@dataclass
class CheckpointDir:
    """One checkpoint directory (a str path is accepted): safetensors weights, the trainer state and the config
    it was saved with."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def weights_path(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def trainer_state_path(self) -> Path:
        return self.path / "trainer_state.pt"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG


@dataclass
class RunDir:
    """A run directory (a str path is accepted); see the module docstring for what it holds."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "tensorboard"

    @property
    def loss_plot_path(self) -> Path:
        return self.root / "loss.png"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, step: int) -> CheckpointDir:
        """The checkpoint of `step`, whether written yet or not (zero-padded, so names sort by step)."""
        return CheckpointDir(self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{step:08d}")

    def checkpoints(self) -> list[CheckpointDir]:
        """The complete checkpoints, oldest first (a temporary one being written starts with "." and is skipped)."""
        if not self.checkpoints_dir.is_dir():
            return []
        return [CheckpointDir(path) for path in sorted(self.checkpoints_dir.iterdir())
                if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX)]

    def latest_checkpoint(self) -> CheckpointDir | None:
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None
