"""What a suite reads back from its run directories: whether each run is finished, interrupted or new, and a
finished run's numbers (final validation loss and bits per byte, curves, expert-load balance over training)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dsmoe.data.identity import absolute_path
from dsmoe.reproduce.suite_dir import INCOMPLETE
from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.runs.metrics_log import read_metrics

CURVE_POINTS = 200  # a curve keeps at most this many evenly spaced points


def run_state(run_dir: Path, expected: RunConfig) -> str:
    """"finished" (its final evaluation is logged), "interrupted" (a checkpoint, no final evaluation) or "new". A
    run trained with another model than the suite's now is refused, naming the fields; one killed before its first
    checkpoint is moved aside (nothing in it is deleted) and starts again."""
    run = RunDir(run_dir)
    if run.latest_checkpoint() is None:
        if run.path.exists() and any(run.path.iterdir()):
            aside = run.path.with_name(f"{run.path.name}{INCOMPLETE}{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(run.path, aside)
            print(f"{run.path} has no checkpoint (killed before its first): moved aside to {aside}")
        return "new"
    differences = run_differences(RunConfig.load(run.config_path), expected)
    if differences:
        raise ValueError(f"{run.path} holds another run than this suite asks for ({'; '.join(differences)}); choose "
                         "another --out or move it away")
    finished = run.metrics_path.is_file() and any("final_val" in record for record in read_metrics(run.metrics_path))
    return "finished" if finished else "interrupted"


def run_differences(saved: RunConfig, expected: RunConfig) -> list[str]:
    """'section.key: saved -> expected' for what makes a run another one: the model, the data read, the seed, the
    batch, the recipe and the budget (a minutes run's steps are sized on the machine, so only its minutes count)."""
    budget = ("time_budget_min",) if expected.train.time_budget_min is not None else ("steps", "time_budget_min")
    train_keys = ("seed", "batch_size", "grad_accum", "lr", "warmup_steps", "min_lr_ratio", "schedule", *budget)
    saved_data = {"path": saved.data.path, "seq_len": saved.data.seq_len, "vocab_size": saved.data.vocab_size}
    expected_data = {"path": absolute_path(expected.data.path), "seq_len": expected.data.seq_len,
                     "vocab_size": expected.data.vocab_size}
    pairs = [("model", saved.model.to_dict(), expected.model.to_dict()), ("data", saved_data, expected_data),
             ("train", {key: getattr(saved.train, key) for key in train_keys},
              {key: getattr(expected.train, key) for key in train_keys})]
    return [f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}" for section, old, new in pairs
            for key in sorted({*old, *new}) if old.get(key) != new.get(key)]


def thinned(points: list[list[float]]) -> list[list[float]]:
    stride = max(1, -(-len(points) // CURVE_POINTS))
    return points[::stride] + ([points[-1]] if points and (len(points) - 1) % stride else [])


def mean_max_vio(record: dict) -> float | None:
    """The step's MaxVio (Wang et al. 2024: max load / mean load - 1 of its batch), averaged over MoE layers."""
    layers = record.get("experts") or {}
    return sum(layer["max_over_mean"] - 1 for layer in layers.values()) / len(layers) if layers else None


def run_results(run_dir: Path, seed: int) -> dict:
    run = RunDir(run_dir)
    records = read_metrics(run.metrics_path)
    final = next(record for record in reversed(records) if "final_val" in record)
    steps = [record for record in records if "loss" in record]
    state = ckpt.load_trainer_state(run.latest_checkpoint())
    vio = [[record["step"], value] for record in steps if (value := mean_max_vio(record)) is not None]
    return {"seed": seed, "run_dir": str(run.path), "val_loss": final["final_val"], "val_bpb": final["final_val_bpb"],
            "steps": final["step"], "train_minutes": state.get("progress", {}).get("elapsed_s", 0.0) / 60,
            "train_curve": thinned([[record["step"], record["loss"]] for record in steps]),
            "val_curve": [[record["step"], record["val_loss"]] for record in records if "val_loss" in record],
            "max_vio": thinned(vio)}
