"""`dsmoe analyze`: every analysis of a run's experts, from one routing trace and a few probes, into a directory
holding numbers.json (every number), the PNG plots and one self-contained report.html.

Steps: open the run's checkpoint and the data (analysis.domain_data); record or reopen the routing trace
(analysis.trace_store); the trace's statistics per layer (analysis.trace_numbers); load over training from
metrics.jsonl; the model's own numbers (shared against routed output, redundancy, routing stability across the
kept checkpoints, the expert-disabling and shared-expert probes: analysis.model_numbers); then the report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsmoe.analysis.domain_data import DomainData, analysis_data, token_counts
from dsmoe.analysis.load_balance import load_over_training
from dsmoe.analysis.model_numbers import ProbeData, disabling_curve, model_numbers, stability_numbers
from dsmoe.analysis.probes import disabling_steps
from dsmoe.analysis.report import REPORT, check_output, write_analysis
from dsmoe.analysis.trace_numbers import trace_numbers
from dsmoe.analysis.trace_store import stored_trace
from dsmoe.runs import CheckpointDir, LoadedRun, RunDir, load_run
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.runtime.devices import resolve_device

DEFAULT_MAX_TOKENS = 1 << 18  # per domain: enough for stable shares, bounded time on a CPU
DTYPE = "float32"  # routing recorded as the fp32 weights choose, so a stored trace holds on every device


@dataclass(frozen=True)
class Analysis:
    """Where the analysis went, and its numbers (what numbers.json holds)."""

    out_dir: Path
    numbers: dict

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT


def checkpoint_of(run: RunDir, step: int | None) -> CheckpointDir | None:
    """The checkpoint of --checkpoint STEP (None: the newest intact one), refused naming the steps there are."""
    if step is None:
        return None
    chosen = run.checkpoint(step)
    if not chosen.path.is_dir():
        steps = [checkpoint.step for checkpoint in run.checkpoints()]
        raise ValueError(f"--checkpoint {step}: {run.path} has no checkpoint of step {step} (it has: {steps or 'none'})")
    return chosen


def run_labels(paths: list[Path]) -> list[str]:
    """How each run is named on a plot: its directory's name, or its whole path where two names are alike."""
    names = [path.name for path in paths]
    return [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]


def opened(run_dir: str | Path, data: str | None, max_tokens: int, device: torch.device, step: int | None = None
           ) -> tuple[RunDir, LoadedRun, DomainData]:
    run = RunDir(run_dir)
    chosen = checkpoint_of(run, step)
    loaded = load_run(run.path, chosen.path if chosen else None, device)
    if not loaded.config.model.moe_layers:
        raise ValueError(f"{str(run.path)!r} is a dense model (no MoE layer): it has no experts to analyse")
    return run, loaded, analysis_data(loaded.config, loaded.tokenizer, run.tokenizer_path, data, max_tokens)


def run_numbers(run: RunDir, loaded: LoadedRun, data: DomainData, disabling_ks: list[int] | None,
                probe_batches: int) -> dict:
    """Everything about one run's checkpoint on `data` (see the module docstring); no probes if disabling_ks is
    None."""
    config, model = loaded.config, loaded.model
    checkpoint = CheckpointDir(loaded.checkpoint)
    seq_len, batch_size = config.data.seq_len, config.train.batch_size
    trace = stored_trace(run.traces_dir, checkpoint, data.tokens, seq_len, batch_size, lambda: model)
    numbers = {"run": str(run.path), "checkpoint": str(checkpoint.path), "step": checkpoint.step,
               "data": data.described, "domains": trace.domain_names, "n_tokens": trace.n_tokens,
               "tokens_per_domain": token_counts(data.tokens, seq_len, probe_batches * batch_size),
               "seq_len": seq_len, "batch_size": batch_size, "probe_batches": probe_batches,
               "moe_layers": trace.moe_layers, "n_experts": trace.n_experts, "top_k": trace.top_k,
               "router": config.model.router,
               "layers": trace_numbers(trace, loaded.tokenizer.decode, config.model.vocab_size, batch_size * seq_len)}
    if run.metrics_path.is_file():
        numbers["over_training"] = load_over_training(read_metrics(run.metrics_path))
    probe_data = ProbeData(data.tokens, seq_len, batch_size, probe_batches)
    loads = {int(layer): np.array(stats["load"]["tokens_per_expert"]) for layer, stats in numbers["layers"].items()}
    numbers.update(model_numbers(model, loads, probe_data, disabling_ks))
    numbers["stability"] = stability_numbers(run, checkpoint, trace, data.tokens, seq_len, batch_size, loaded.device)
    return numbers


def analyze_run(run_dir: str | Path, data: str | None = None, step: int | None = None,
                compare: tuple[str | Path, ...] = (), out: str | Path | None = None,
                max_tokens: int = DEFAULT_MAX_TOKENS, probes: bool = True, probe_batches: int = 8,
                device: str | torch.device = "auto") -> Analysis:
    """Analyse the experts of run `run_dir` (its newest intact checkpoint, or that of `step`) on `data` (see
    analysis.domain_data), with the expert-disabling probe of each `compare` run on one plot (every run at the same
    shares of its experts disabled: 0, 1, .., 4 over the fewest experts of any of them); write numbers.json,
    the plots and report.html to `out` (default RUN/analysis/report/), replacing an earlier analysis there only
    once the new one is complete. The models (trace, norms, probes) run on `device` (a torch.device or a --device
    name) in float32; the statistics and the report are computed on the CPU. The expert kernel used is said on
    stderr once every run and the data are read."""
    device = resolve_device(device, "device")
    out_dir = Path(out) if out else RunDir(run_dir).analysis_report_dir
    check_output(out_dir)
    run, loaded, domain_data = opened(run_dir, data, max_tokens, device, step)
    others = [opened(other, data, max_tokens, device) for other in compare]  # every run opens before any work
    print(loaded.expert_kernel(DTYPE), file=sys.stderr)
    ks = disabling_steps([each.config.model.n_routed_experts for each in [loaded, *(other for _, other, _ in others)]])
    numbers = run_numbers(run, loaded, domain_data, ks[0] if probes else None, probe_batches)
    if probes:
        labels = run_labels([run.path] + [other_run.path for other_run, _, _ in others])
        curves = {labels[0]: numbers.pop("expert_disabling")}
        for label, other_ks, (other_run, other_loaded, other_data) in zip(labels[1:], ks[1:], others):
            curves[label] = disabling_curve(other_run, other_loaded, other_data.tokens, probe_batches, other_ks)
        numbers["expert_disabling"] = curves
    return Analysis(out_dir, write_analysis(out_dir, numbers, run.metrics_path))
