"""Peak resident memory of one call, measured in a fresh subprocess (Linux /proc; CPU tensors only)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_rss_growth_mib(run: Callable[[], None]) -> float:
    """MiB the resident set peaked above its size before run(): the memory run() needed at its worst."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak, to the current size
    before = status_kib("VmRSS")
    run()
    return (status_kib("VmHWM") - before) / 1024


def in_subprocess(script: str, *args: str) -> float:
    """Run `python script *args`, which must print one number last (a peak in MiB), and return it."""
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])
