"""The quickstart's main job: train the `tiny` DeepSeekMoE preset on Tiny Shakespeare for about five
minutes, then show validation loss and bits per byte, the per-layer expert load, a generated sample,
and where the run's checkpoint, metrics and loss-curve plot are. With compare_dense, then train its dense
counterpart (dsmoe.model.counterpart: the same activated parameters per token) the same way for the same time,
and print the two side by side."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from dsmoe.analysis.charts import plot_loss_curve
from dsmoe.inference import SamplingConfig
from dsmoe.inference.stream import stream_completion
from dsmoe.model import count_params
from dsmoe.model.counterpart import dense_counterpart
from dsmoe.runs import RunConfig, RunDir, load_run
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.runs.run_config import Override
from dsmoe.train.calibrate import fit_steps_to_budget, seconds_per_step
from dsmoe.train.loop import TrainResult, train
from dsmoe.train.metrics import load_summary
from dsmoe.train.resume import check_new_run_dir

DEMO_CONFIG = Path(__file__).parent / "configs" / "tiny.toml"  # package data, so an installed wheel runs it
# Of the demo's minutes, the share kept for what is not training: reading the data before it, the final evaluation,
# the sample and the plot after it (about 8 s of 5 minutes on 2 cores), so that the whole demo ends in its minutes.
REPORT_SHARE = 0.04
# The schedule is sized for this many times the steps the timed speed fits: this VM's speed drifts by a third within
# minutes, a run sized too short finishes early with time unused, and one sized long is ended by the clock with its
# schedule annealed (dsmoe.train.progress follows whichever is further along, steps or time).
STEP_HEADROOM = 1.5


def expert_load_table(metrics_path: Path, last_steps: int = 50) -> str:
    """Per MoE layer, the expert load summed over the last steps: max/mean, CV, and the load itself."""
    records = [r for r in read_metrics(metrics_path) if "experts" in r][-last_steps:]
    rows = [f"{'layer':>5}  {'max/mean':>8}  {'CV':>5}  tokens per expert (last {len(records)} steps, % of mean)"]
    for layer in records[-1]["experts"]:
        load = [sum(values) for values in zip(*(r["experts"][layer]["tokens_per_expert"] for r in records))]
        summary = load_summary(torch.tensor(load))
        mean = sum(load) / len(load)
        shares = " ".join(f"{100 * v / mean:3.0f}" for v in load)
        rows.append(f"{layer:>5}  {summary['max_over_mean']:8.2f}  {summary['cv']:5.2f}  {shares}")
    return "\n".join(rows)


def run_demo(minutes: float = 5.0, out: str | Path | None = None, overrides: Sequence[Override] = (),
             compare_dense: bool = False, device: str | torch.device = "auto") -> TrainResult:
    """Train the demo for up to `minutes` into `out` (default runs/demo-<date>-<time>) with `overrides` of its
    config applied, printing the report to stdout; with compare_dense, then its dense counterpart for as long into
    `<out>-dense`. Training, its timing and the sample run on `device` (train.device; an override of train.device
    wins). Returns where the MoE's training stopped (or the dense one's, if that stopped early)."""
    out = Path(out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    config = RunConfig.load(DEMO_CONFIG, [("train.time_budget_min", minutes), ("train.device", str(device)),
                                          *overrides])
    dense = dataclasses.replace(config, model=dense_counterpart(config.model)) if compare_dense else None
    dense_out = out.with_name(out.name + "-dense")
    for run_dir in (out, dense_out) if dense is not None else (out,):  # before any work, not after 5 minutes
        check_new_run_dir(RunDir(run_dir))
    result = train_and_report(config, minutes, out, "the tiny DeepSeekMoE")
    if result.final_eval is None:
        return result
    if dense is None:
        print("\nits dense counterpart, trained the same way for the same time: `dsmoe demo --compare-dense` (measured "
              "over seeds in docs/BENCHMARKS.md)")
        return result
    print("\n--compare-dense: the same recipe and time budget for the dense model of the same activated parameters")
    dense_result = train_and_report(dense, minutes, dense_out, "its dense counterpart")
    if dense_result.final_eval is not None:
        print("\n" + comparison_table({"DeepSeekMoE": (config, result), "dense": (dense, dense_result)}))
    return result if dense_result.final_eval is not None else dense_result


def train_and_report(config: RunConfig, minutes: float, out: Path, label: str) -> TrainResult:
    """Fit the schedule to `minutes` on this machine, train into `out` and print the demo's report."""
    config = fit_to_minutes(config, minutes)
    params = count_params(config.model)
    print(f"training {label} ({params.total / 1e6:.1f}M params, {params.activated / 1e6:.1f}M "
          f"activated per token) on Tiny Shakespeare for up to {minutes:g} minutes -> {out}")
    print(f"measured on this machine: about {round(config.train.steps / STEP_HEADROOM)} steps of "
          f"{config.train.batch_size} x {config.data.seq_len} tokens fit in that time (the schedule follows the clock)")
    result = train(config, out)
    if result.final_eval is None:  # stopped by a signal: the checkpoint is saved (train said how to resume)
        return result
    print(f"validation: {result.final_eval.summary()}")
    run = RunDir(out)
    if config.model.moe_layers:
        print("\nexpert load per MoE layer (100 = the mean; a balanced layer is flat):")
        print(expert_load_table(run.metrics_path))
    print("\nsample (temperature 0.8, top-k 50):\n")
    loaded = load_run(out, device=config.train.device)
    sys.stdout.write("ROMEO:")
    with loaded.autocast():
        stream_completion(loaded.model, loaded.tokenizer, "ROMEO:", SamplingConfig(max_new_tokens=120), sys.stdout)
    plot = plot_loss_curve(run.metrics_path, run.loss_plot_path)
    print(f"\n\nrun directory {out}: {run.checkpoints_dir.name}/, {run.metrics_path.name}, {run.config_path.name}, "
          f"{run.tokenizer_path.name}, {plot.name}")
    return result


def fit_to_minutes(config: RunConfig, minutes: float) -> RunConfig:
    """The config with the training time the demo's minutes leave once the step is timed and REPORT_SHARE is kept,
    and its steps sized to that time on this machine (so the warm-up and the schedule's steps match it)."""
    deadline = time.perf_counter() + 60 * minutes * (1 - REPORT_SHARE)
    step_seconds = seconds_per_step(config)
    train_minutes = max(deadline - time.perf_counter(), step_seconds) / 60
    budgeted = dataclasses.replace(config, train=dataclasses.replace(config.train, time_budget_min=train_minutes))
    return fit_steps_to_budget(budgeted, train_minutes, step_seconds=step_seconds / STEP_HEADROOM)


def comparison_table(runs: dict[str, tuple[RunConfig, TrainResult]]) -> str:
    """The models side by side: parameters, steps and tokens/s in the same time, validation bits per byte."""
    rows = [f"{'model':<12}{'params':>8}{'activated':>11}{'steps':>7}{'tokens/s':>10}{'val bits/byte':>15}"]
    for name, (config, result) in runs.items():
        params = count_params(config.model)
        tokens_per_s = median_tokens_per_s(RunDir(result.run_dir).metrics_path)
        rows.append(f"{name:<12}{params.total / 1e6:>7.2f}M{params.activated / 1e6:>10.2f}M{result.step:>7}"
                    f"{tokens_per_s:>10,.0f}{result.final_eval.bits_per_byte:>15.4f}")
    (first_name, (_, first)), (second_name, (_, second)) = list(runs.items())[:2]
    gap = first.final_eval.bits_per_byte - second.final_eval.bits_per_byte
    direction = "better" if gap < 0 else "worse"
    verdict = "level with" if round(gap, 4) == 0 else f"{abs(gap):.4f} bits per byte {direction} than"
    rows.append(f"{first_name} is {verdict} {second_name} in this run (one seed each; the spread over seeds is in "
                "docs/BENCHMARKS.md)")
    return "\n".join(rows)


def median_tokens_per_s(metrics_path: Path) -> float:
    speeds = sorted(r["tokens_per_s"] for r in read_metrics(metrics_path) if "tokens_per_s" in r)
    return speeds[len(speeds) // 2]
