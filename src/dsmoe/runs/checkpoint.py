"""Checkpoints: safetensors weights + trainer state + the run's config, written atomically, the last N kept.

A checkpoint is written with dsmoe.atomic.atomic_directory, so a crash or a full disk leaves the previous
checkpoints untouched. Loading never unpickles arbitrary objects: weights come from safetensors, the trainer
state through torch.load(weights_only=True). Where the files go is runs.layout's business.
"""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from dsmoe.atomic import atomic_directory
from dsmoe.runs.layout import CheckpointDir, RunDir


def save_checkpoint(run: RunDir, step: int, model: nn.Module, trainer_state: dict, config_toml: str,
                    keep_last: int) -> CheckpointDir:
    """Write checkpoint `step` atomically (replacing one of the same step), then delete all but the newest
    `keep_last`."""
    checkpoint = run.checkpoint(step)
    with atomic_directory(checkpoint.path, replace=True) as temporary:
        written = CheckpointDir(temporary)
        save_model(model, str(written.weights_path))
        torch.save(trainer_state, written.trainer_state_path)
        written.config_path.write_text(config_toml)
    for old in run.checkpoints()[:-keep_last]:
        shutil.rmtree(old.path)
    return checkpoint


def load_weights(checkpoint: CheckpointDir, model: nn.Module) -> None:
    """Load safetensors weights strictly: a missing or unexpected tensor is an error naming it."""
    missing, unexpected = load_model(model, str(checkpoint.weights_path), strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint.path} does not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")


def load_trainer_state(checkpoint: CheckpointDir) -> dict:
    return torch.load(checkpoint.trainer_state_path, weights_only=True)
