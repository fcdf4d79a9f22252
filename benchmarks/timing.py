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


def device_name(device: torch.device | str) -> str:
    """The GPU's name, or "CPU", for the header line of a benchmark's output."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued kernels (a no-op on the CPU), so a wall-clock time covers the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(runs: dict[str, Callable[[], None]], warmup: int, repeats: int,
                     device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each run; every round runs each once, rotating the order so none always goes first."""
    times = {name: [] for name in runs}
    order = list(runs)
    for round_index in range(warmup + repeats):
        for name in order[round_index % len(order):] + order[:round_index % len(order)]:
            synchronize(device)
            start = time.perf_counter()
            runs[name]()
            synchronize(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def print_times(times: dict[str, list[float]], work: int, unit: str, reference: str) -> None:
    """One row per implementation: median and min ms, `work` units per second, and time relative to `reference`."""
    print(f"  {'impl':<16} {'median ms':>10} {'min ms':>9} {unit + '/s':>14} {'time / ' + reference:>16}")
    for name, samples in times.items():
        print(f"  {name:<16} {median(samples) * 1e3:>10.1f} {min(samples) * 1e3:>9.1f} {work / median(samples):>14.0f}"
              f" {median(samples) / median(times[reference]):>15.2f}x")
