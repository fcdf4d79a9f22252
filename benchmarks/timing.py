"""Round-robin timing shared by the benchmarks: machines are noisy, so implementations interleave."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch

from dsmoe.runtime import retain_freed_memory


def setup_cpu(system_allocator: bool) -> str:
    """Use every core this process may run on; keep freed memory for reuse as `dsmoe train` does."""
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    retained = not system_allocator and retain_freed_memory()
    return f"torch {torch.__version__}, {threads} threads, {'retained' if retained else 'system'} allocator"


def time_round_robin(runs: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each run; every round runs each once, rotating the order so none always goes first."""
    times = {name: [] for name in runs}
    order = list(runs)
    for round_index in range(warmup + repeats):
        for name in order[round_index % len(order):] + order[:round_index % len(order)]:
            start = time.perf_counter()
            runs[name]()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(samples: list[float]) -> float:
    return statistics.median(samples)
