"""Per-step metrics: expert-load statistics and an append-only JSONL log that survives resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dsmoe.atomic import atomic_file
from dsmoe.routers import RouterStats

if TYPE_CHECKING:
    from dsmoe.eval import EvalResult

EVAL_KEYS = {False: ("val_loss", "val_bpb", "val_domains"), True: ("final_val", "final_val_bpb", "final_val_domains")}


def load_summary(tokens_per_expert: torch.Tensor) -> dict[str, float]:
    """Coefficient of variation and max/mean of one layer's expert load (0 and 1 when balanced)."""
    load = tokens_per_expert.double()
    mean = load.mean().clamp_min(1e-12)
    return {"cv": (load.std(unbiased=False) / mean).item(), "max_over_mean": (load.max() / mean).item()}


def sum_router_stats(per_micro_batch: list[list[RouterStats]]) -> list[RouterStats]:
    """Add the stats of each MoE layer over the micro-batches of one optimizer step."""
    return [RouterStats(sum(s.tokens_per_expert for s in layer), sum(s.dropped_tokens for s in layer))
            for layer in zip(*per_micro_batch)]


def expert_metrics(moe_layers: list[int], stats: list[RouterStats]) -> dict[str, dict]:
    return {str(layer): {"tokens_per_expert": s.tokens_per_expert.tolist(), "dropped": int(s.dropped_tokens),
                         **load_summary(s.tokens_per_expert)} for layer, s in zip(moe_layers, stats)}


def eval_record(step: int, result: EvalResult, final: bool) -> dict:
    """A validation record: loss and bits per byte, pooled and (with several domains) per domain."""
    loss_key, bpb_key, domains_key = EVAL_KEYS[final]
    record = {"step": step, loss_key: result.loss, bpb_key: result.bits_per_byte}
    if result.per_domain:
        record[domains_key] = {name: {"loss": r.loss, "bpb": r.bits_per_byte} for name, r in result.per_domain.items()}
    return record


class MetricsLog:
    """The run's metrics.jsonl (RunDir.metrics_path), appended one whole line per record. On resume, records after
    the resumed step are dropped (they are recomputed), with any torn last line, by an atomic rewrite, so the log
    always matches the checkpoint."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            kept = [record for record in read_metrics(self.path) if record.get("step", -1) <= resume_step]
            with atomic_file(self.path) as temporary:
                temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))
        self.file = self.path.open("ab", buffering=0)

    def write(self, record: dict) -> None:
        line = memoryview((json.dumps(record) + "\n").encode())
        while line:  # one write(2) in practice; a short one (a full disk) is finished or raises, never left mid-file
            line = line[self.file.write(line):]

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl. An unterminated last line is left out (a write cut short by a kill or a full
    disk, or one still under way); a complete line that is not a JSON object is an error naming file and line."""
    data = Path(path).read_bytes()
    records = []
    for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:  # bad JSON or bad UTF-8
            raise ValueError(f"{path} line {number} is not a JSON record ({error}); the file is damaged: delete "
                             "that line to go on") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {number} is not a JSON record (a {type(record).__name__}, not an object); "
                             "the file is damaged: delete that line to go on")
        records.append(record)
    return records
