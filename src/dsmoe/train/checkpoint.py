"""Checkpoints: safetensors weights + trainer state, written atomically, the last N kept.

Layout: RUN/checkpoints/step_00000100/{model.safetensors, trainer_state.pt, config.toml}. A checkpoint is
written into a temporary sibling directory, every file fsynced, then renamed into place, so a crash
or a full disk leaves the previous checkpoints untouched. Loading never unpickles arbitrary objects:
weights come from safetensors, the trainer state through torch.load(weights_only=True).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"
CONFIG = "config.toml"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are never listed)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def fsync_tree(directory: Path) -> None:
    for path in [*directory.iterdir(), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, trainer_state: dict, config_toml: str,
                    keep_last: int) -> Path:
    """Write checkpoint `step` atomically, then delete all but the newest `keep_last`."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / WEIGHTS))
        torch.save(trainer_state, tmp / TRAINER_STATE)
        (tmp / CONFIG).write_text(config_toml)
        fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_tree(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_weights(checkpoint: Path, model: nn.Module) -> None:
    """Load safetensors weights strictly: a missing or unexpected tensor is an error naming it."""
    missing, unexpected = load_model(model, str(Path(checkpoint) / WEIGHTS), strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint} does not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")


def load_trainer_state(checkpoint: Path) -> dict:
    return torch.load(Path(checkpoint) / TRAINER_STATE, weights_only=True)
