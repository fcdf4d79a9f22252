"""TensorBoard event files of a run (train.tensorboard=true), written from the records metrics.jsonl gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

INSTALL_COMMAND = "pip install 'dsmoe[tensorboard]'"


class MissingDependencyError(ImportError):
    """An optional package a requested feature needs is not installed (the CLI prints it without a traceback)."""


def summary_writer_class() -> type:
    """torch's SummaryWriter, or an ImportError naming train.tensorboard and the install command."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise MissingDependencyError(f"train.tensorboard=true needs the tensorboard package, which is not "
                                     f"installed; install it with: {INSTALL_COMMAND} (or set train.tensorboard=false)"
                                     ) from error
    return SummaryWriter


def flatten(record: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(key path joined by "/", value) for every leaf of a nested record: experts/3/cv, val_domains/code/bpb."""
    for key, value in record.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


class TensorBoardLog:
    """TensorBoard events in `log_dir` (a run's RunDir.tensorboard_dir): each number of a metrics record becomes a
    scalar tagged by its key path, at the record's step; each list (a layer's tokens_per_expert) becomes a
    histogram whose bucket i is expert i's load.

    Fed the very records MetricsLog writes, so the two agree. On resume, events after the resumed step are
    purged (TensorBoard's purge_step) as MetricsLog drops its records after that step.
    """

    def __init__(self, log_dir: Path, resume_step: int = 0):
        purge_step = resume_step + 1 if resume_step else None
        self.writer = summary_writer_class()(str(log_dir), purge_step=purge_step)

    def write(self, record: dict) -> None:
        step = record["step"]
        for tag, value in flatten(record):
            if tag == "step":
                continue
            if isinstance(value, list):
                self.add_load_histogram(tag, value, step)
            else:
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def add_load_histogram(self, tag: str, tokens_per_expert: list[int], step: int) -> None:
        """Bucket i, (i - 0.5, i + 0.5], holds expert i's token count: the histogram of expert indices chosen."""
        counts = [float(count) for count in tokens_per_expert]
        indices = range(len(counts))
        self.writer.add_histogram_raw(tag, min=0, max=len(counts) - 1, num=sum(counts),
                                      sum=sum(i * c for i, c in zip(indices, counts)),
                                      sum_squares=sum(i * i * c for i, c in zip(indices, counts)),
                                      bucket_limits=[i + 0.5 for i in indices], bucket_counts=counts,
                                      global_step=step)

    def close(self) -> None:
        self.writer.close()
