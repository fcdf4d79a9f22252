"""What a suite reads back from its run directories: whether each run is finished, interrupted or new, and a
finished run's numbers (final validation loss and bits per byte, curves, expert-load balance over training)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train.metrics import read_metrics

CURVE_POINTS = 200  # a curve keeps at most this many evenly spaced points


def run_state(run_dir: Path, expected: RunConfig) -> str:
    """"finished" (its final evaluation is logged), "interrupted" (a checkpoint, no final evaluation) or "new". A
    run trained with another model than the suite's now is refused, naming the fields; one killed before its first
    checkpoint is moved aside (nothing in it is deleted) and starts again."""
    run = RunDir(run_dir)
    if run.latest_checkpoint() is None:
        if run.path.exists() and any(run.path.iterdir()):
            aside = run.path.with_name(f"{run.path.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(run.path, aside)
            print(f"{run.path} has no checkpoint (killed before its first): moved aside to {aside}")
        return "new"
    saved = RunConfig.load(run.config_path)
    differences = [f"model.{key}: {value!r} -> {expected.model.to_dict().get(key)!r}"
                   for key, value in saved.model.to_dict().items() if expected.model.to_dict().get(key) != value]
    if differences or saved.train.seed != expected.train.seed:
        raise ValueError(f"{run.path} holds another run than this suite asks for ({'; '.join(differences) or 'seed'})"
                         "; choose another --out or move it away")
    finished = run.metrics_path.is_file() and any("final_val" in record for record in read_metrics(run.metrics_path))
    return "finished" if finished else "interrupted"


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
    vio = [[record["step"], mean_max_vio(record)] for record in steps if mean_max_vio(record) is not None]
    return {"seed": seed, "run_dir": str(run.path), "val_loss": final["final_val"], "val_bpb": final["final_val_bpb"],
            "steps": final["step"], "train_minutes": state.get("progress", {}).get("elapsed_s", 0.0) / 60,
            "train_curve": thinned([[record["step"], record["loss"]] for record in steps]),
            "val_curve": [[record["step"], record["val_loss"]] for record in records if "val_loss" in record],
            "max_vio": thinned(vio)}
