"""Starting torchrun jobs from the tests: a free rendezvous port each time (--standalone), the venv's Python."""

from __future__ import annotations

import subprocess
import sys

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def torchrun(n_processes: int, args: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `args` (a script path or `-m module ...`) in n_processes ranks; stdout and stderr captured."""
    return subprocess.run([*TORCHRUN, "--nproc-per-node", str(n_processes), *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def torchrun_dsmoe(n_processes: int, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return torchrun(n_processes, ["-m", "dsmoe", *args], **kwargs)


def start_torchrun_dsmoe(n_processes: int, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, "--nproc-per-node", str(n_processes), "-m", "dsmoe", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
