"""The analysis numbers that need the model, not only its routing trace: shared against routed output, redundancy,
the expert-disabling and shared-expert probes, and routing stability across a run's kept checkpoints."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dsmoe.analysis.contributions import shared_routed_norms
from dsmoe.analysis.load_balance import expert_loads
from dsmoe.analysis.probes import expert_disabling_curve, shared_expert_probe, window_losses
from dsmoe.analysis.redundancy import redundancy_numbers
from dsmoe.analysis.stability import check_same_tokens, expert_set_changes
from dsmoe.analysis.trace import Trace
from dsmoe.analysis.trace_store import stored_trace
from dsmoe.data import val_batches
from dsmoe.runs import CheckpointDir, LoadedRun, RunDir, load_run
from dsmoe.runs.checkpoint import CorruptCheckpointError

SAMPLE_BATCHES = 2  # per domain, for the output norms and the expert outputs compared


@dataclass(frozen=True)
class ProbeData:
    """The routed text and how the probes score it: the loss of each window of at most max_batches batches per
    domain (probes.window_losses)."""

    tokens: dict[str, np.ndarray]
    seq_len: int
    batch_size: int
    max_batches: int

    def evaluate(self, model: nn.Module) -> np.ndarray:
        return window_losses(model, self.tokens, self.seq_len, self.batch_size, self.max_batches)

    def sample_batches(self) -> Iterator[torch.Tensor]:
        """A few [B, L] batches of every domain, spread over its text."""
        for tokens in self.tokens.values():
            batches = val_batches(tokens, self.seq_len, self.batch_size, SAMPLE_BATCHES)
            yield from (inputs for inputs, _ in itertools.islice(batches, SAMPLE_BATCHES))


def trace_loads(trace: Trace) -> dict[int, np.ndarray]:
    return {layer: expert_loads(trace.experts(layer), trace.n_experts) for layer in trace.moe_layers}


def model_numbers(model: nn.Module, loads: dict[int, np.ndarray], data: ProbeData,
                  disabling_ks: list[int] | None) -> dict:
    """Norms, redundancy and, unless disabling_ks is None, the probes (the disabling curve at those k, disabling
    the most-loaded experts of `loads`, layer -> tokens per expert)."""
    has_shared = any(block.is_moe and block.ffn.shared_experts is not None for block in model.layers)
    numbers = {"shared_vs_routed": shared_routed_norms(model, data.sample_batches()) if has_shared else None,
               "redundancy": redundancy_numbers(model, data.sample_batches())}
    if disabling_ks is not None:
        numbers["expert_disabling"] = expert_disabling_curve(model, loads, data.evaluate, disabling_ks)
        numbers["shared_expert_probe"] = shared_expert_probe(model, data.evaluate) if has_shared else None
    return numbers


def disabling_curve(run: RunDir, loaded: LoadedRun, tokens: dict[str, np.ndarray], max_batches: int,
                    ks: list[int]) -> list[dict]:
    """The expert-disabling curve of another run (a --compare run), from its own trace of the same text."""
    config = loaded.config
    trace = stored_trace(run.traces_dir, CheckpointDir(loaded.checkpoint), tokens, config.data.seq_len,
                         config.train.batch_size, lambda: loaded.model)
    data = ProbeData(tokens, config.data.seq_len, config.train.batch_size, max_batches)
    return expert_disabling_curve(loaded.model, trace_loads(trace), data.evaluate, ks)


def stability_numbers(run: RunDir, analysed: CheckpointDir, trace: Trace, tokens: dict[str, np.ndarray],
                      seq_len: int, batch_size: int, device: torch.device = torch.device("cpu")) -> list[dict]:
    """For every other intact checkpoint of the run, oldest first: the share of tokens whose expert set differs
    from the analysed checkpoint's, per layer (how early routing settles). A checkpoint is loaded (and verified),
    onto `device`, only when its trace is not stored yet; a corrupt one is skipped, said so."""
    found = []
    for checkpoint in run.checkpoints():
        if checkpoint.path == analysed.path:
            continue
        try:
            other = stored_trace(run.traces_dir, checkpoint, tokens, seq_len, batch_size,
                                 lambda checkpoint=checkpoint: load_run(run.path, checkpoint.path, device).model)
        except CorruptCheckpointError as error:
            print(f"routing stability: skipping corrupt checkpoint ({error})", file=sys.stderr)
            continue
        check_same_tokens(trace.token_ids, other.token_ids)
        found.append({"checkpoint": str(checkpoint.path), "step": checkpoint.step,
                      "layers": {str(layer): expert_set_changes(other.experts(layer), trace.experts(layer))
                                 for layer in trace.moe_layers}})
    return found
