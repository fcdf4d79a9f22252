"""Checkpoints: safetensors weights + trainer state + the run's config, with a manifest, written atomically, the
last N kept.

A checkpoint is written with dsmoe.atomic.atomic_directory, so a crash or a full disk leaves the previous
checkpoints untouched. Its manifest.json, written last inside it, holds each other file's size and sha256:

    {"format": 1, "files": {"config.toml": {"size": 412, "sha256": "9f2c..."}, "model.safetensors": {...}, ...}}

so that a file damaged later (a flipped bit, a truncated copy) is caught on load, naming it, and readers fall back
to the newest intact checkpoint. The manifest is also the record of what dsmoe wrote: an old checkpoint is deleted
(train.keep_last) or replaced (saved again at its step) only if it holds nothing else. A checkpoint from before manifests is checked by safetensors' own parsing of its
weights' header. Loading never unpickles arbitrary objects: weights come from safetensors, the trainer state through
torch.load(weights_only=True). Where the files go is runs.layout's business.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from dsmoe.atomic import atomic_directory, listed
from dsmoe.hashing import file_sha256
from dsmoe.runs.layout import CheckpointDir, RunDir

MANIFEST_FORMAT = 1


class CorruptCheckpointError(ValueError):
    """A checkpoint file differs from its manifest, or cannot be parsed; the message names the file."""


def save_checkpoint(run: RunDir, step: int, weights: nn.Module | dict[str, torch.Tensor], trainer_state: dict,
                    config_toml: str, keep_last: int) -> CheckpointDir:
    """Write checkpoint `step` atomically (replacing one of the same step), then delete all but the newest
    `keep_last`. `weights`: a model, or its state dict with each tied tensor once (dsmoe.parallel.ranks)."""
    checkpoint = run.checkpoint(step)
    foreign = foreign_files(checkpoint) if checkpoint.path.is_dir() else []
    if foreign:
        raise ValueError(f"{checkpoint.path} holds {listed(foreign)}, which dsmoe did not write; saving step {step} "
                         "again would delete it: move it out")
    with atomic_directory(checkpoint.path, replace=True) as temporary:
        write_checkpoint_files(CheckpointDir(temporary), weights, trainer_state, config_toml)
    for old in run.checkpoints()[:-keep_last]:
        remove_checkpoint(old)
    return checkpoint


def foreign_files(checkpoint: CheckpointDir) -> list[str]:
    """The entries of `checkpoint` dsmoe did not write: all but the manifest and the files it lists (a checkpoint
    from before manifests: all but its weights, trainer state and config)."""
    if checkpoint.manifest_path.is_file():
        try:
            written = {checkpoint.manifest_path.name, *read_manifest(checkpoint)}
        except CorruptCheckpointError:
            written = set()
    else:
        written = {path.name for path in (checkpoint.weights_path, checkpoint.trainer_state_path,
                                          checkpoint.config_path)}
    return sorted(path.name for path in checkpoint.path.iterdir() if path.name not in written)


def remove_checkpoint(checkpoint: CheckpointDir) -> None:
    """Delete an old checkpoint, unless it holds something dsmoe did not write (a file of the user's, or a directory
    of a checkpoint's name that is not one): that one is kept whole, saying so on stderr."""
    foreign = foreign_files(checkpoint)
    if foreign:
        print(f"kept {checkpoint.path} beyond train.keep_last: it holds {listed(foreign)}, which dsmoe did not write",
              file=sys.stderr)
        return
    shutil.rmtree(checkpoint.path)


def save_weights_only_run(run_dir: str | Path, step: int, model: nn.Module, config_toml: str,
                          tokenizer_file: Path | None = None) -> RunDir:
    """Write a new run directory atomically: its config, one checkpoint of `model`'s weights without trainer state
    (it evaluates and generates, and cannot be resumed) and, when given, a copy of its tokenizer.json."""
    with atomic_directory(run_dir) as temporary:
        run = RunDir(temporary)
        run.config_path.write_text(config_toml)
        checkpoint = run.checkpoint(step)
        checkpoint.path.mkdir(parents=True)
        write_checkpoint_files(checkpoint, model, None, config_toml)
        if tokenizer_file is not None:
            shutil.copyfile(tokenizer_file, run.tokenizer_path)
    return RunDir(run_dir)


def write_checkpoint_files(checkpoint: CheckpointDir, weights: nn.Module | dict[str, torch.Tensor],
                           trainer_state: dict | None, config_toml: str) -> None:
    """The files of one checkpoint, the manifest last, into a directory being written atomically."""
    if isinstance(weights, nn.Module):
        save_model(weights, str(checkpoint.weights_path))
    else:
        save_file(weights, str(checkpoint.weights_path))
    if trainer_state is not None:
        torch.save(trainer_state, checkpoint.trainer_state_path)
    checkpoint.config_path.write_text(config_toml)
    write_manifest(checkpoint)


def write_manifest(checkpoint: CheckpointDir) -> None:
    """Record the size and sha256 of every file now in `checkpoint` (call it last, inside the atomic write)."""
    files = {path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)}
             for path in sorted(checkpoint.path.iterdir()) if path != checkpoint.manifest_path}
    checkpoint.manifest_path.write_text(json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1) + "\n")


def read_manifest(checkpoint: CheckpointDir) -> dict[str, dict]:
    """The manifest's record of each file; a manifest that does not parse is itself corruption."""
    path = checkpoint.manifest_path
    try:
        manifest = json.loads(path.read_bytes())
        if manifest["format"] == MANIFEST_FORMAT:
            return {name: {"size": int(record["size"]), "sha256": str(record["sha256"])}
                    for name, record in manifest["files"].items()}
        problem = f"format {manifest['format']!r}; this dsmoe reads format {MANIFEST_FORMAT}"
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        problem = f"{type(error).__name__}: {error}"
    raise CorruptCheckpointError(f"{path}: not a valid manifest ({problem})")


def verify_checkpoint(checkpoint: CheckpointDir) -> None:
    """Raise CorruptCheckpointError naming the first file that is missing or whose size or sha256 differs from the
    manifest (a checkpoint without one: whose weights' header safetensors cannot parse)."""
    if not checkpoint.manifest_path.is_file():
        try:
            with safe_open(checkpoint.weights_path, "pt"):
                return
        except (SafetensorError, OSError) as error:
            raise CorruptCheckpointError(f"{checkpoint.weights_path}: {error}") from None
    for name, expected in read_manifest(checkpoint).items():
        path = checkpoint.path / name
        if not path.is_file():
            raise CorruptCheckpointError(f"{path}: missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CorruptCheckpointError(f"{path}: {size} bytes, expected {expected['size']} (truncated?)")
        found = file_sha256(path)
        if found != expected["sha256"]:
            raise CorruptCheckpointError(f"{path}: sha256 mismatch (expected {expected['sha256']}, found {found})")


def newest_intact_checkpoint(run: RunDir) -> CheckpointDir:
    """The newest checkpoint of `run` that verifies. Skipping a corrupt newer one is said on stderr, never done
    silently; a run with no checkpoint, or none intact, is a ValueError."""
    corrupt = []
    for checkpoint in reversed(run.checkpoints()):
        try:
            verify_checkpoint(checkpoint)
        except CorruptCheckpointError as error:
            corrupt.append(f"checkpoint {checkpoint.path.name} is corrupt ({error})")
            continue
        if corrupt:
            print("; ".join(corrupt) + f"; using {checkpoint.path.name}", file=sys.stderr)
        return checkpoint
    if corrupt:
        raise ValueError(f"run directory {str(run.path)!r} has no intact checkpoint: " + "; ".join(corrupt))
    raise ValueError(f"run directory {str(run.path)!r} has no checkpoint yet")


def set_aside_checkpoints_after(run: RunDir, checkpoint: CheckpointDir) -> None:
    """Move the checkpoints newer than `checkpoint` (corrupt ones a resume from it skipped, which it writes again)
    out of the list, saying where on stderr: nothing is deleted, and keep_last counts only intact ones."""
    checkpoints = run.checkpoints()
    for newer in checkpoints[checkpoints.index(checkpoint) + 1:]:
        aside = run.set_aside_path(newer)
        os.replace(newer.path, aside)
        print(f"moved corrupt checkpoint {newer.path.name} aside to {aside}", file=sys.stderr)


def load_weights(checkpoint: CheckpointDir, model: nn.Module) -> None:
    """Load safetensors weights strictly: a missing or unexpected tensor is an error naming it."""
    missing, unexpected = load_model(model, str(checkpoint.weights_path), strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint.path} does not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")


def read_weights(checkpoint: CheckpointDir) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by name, each tied tensor once (as saved), for a caller that places them itself."""
    return load_file(checkpoint.weights_path)


def weights_sha256(checkpoint: CheckpointDir) -> str:
    """The sha256 of the checkpoint's weights file, from its manifest when it has one (else hashed now)."""
    if checkpoint.manifest_path.is_file():
        return read_manifest(checkpoint)[checkpoint.weights_path.name]["sha256"]
    return file_sha256(checkpoint.weights_path)


def has_trainer_state(checkpoint: CheckpointDir) -> bool:
    """Whether training can resume from `checkpoint` (an imported run's checkpoints hold weights only)."""
    return checkpoint.trainer_state_path.is_file()


def load_trainer_state(checkpoint: CheckpointDir) -> dict:
    return torch.load(checkpoint.trainer_state_path, weights_only=True)
