"""Starting torchrun jobs from the tests: a free rendezvous port each time (--standalone), the venv's Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.train.tiny import cli_env

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def torchrun(n_processes: int, args: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `args` (a script path or `-m module ...`) in n_processes ranks; stdout and stderr captured."""
    return subprocess.run([*TORCHRUN, "--nproc-per-node", str(n_processes), *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(threads=None), **kwargs)


def torchrun_dsmoe(n_processes: int, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return torchrun(n_processes, ["-m", "dsmoe", *args], **kwargs)


def start_torchrun_dsmoe(n_processes: int, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, "--nproc-per-node", str(n_processes), "-m", "dsmoe", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(threads=None))


def rank_pid(job: subprocess.Popen, rank: int) -> int | None:
    """The pid of the job's worker of this rank (a child of torchrun's agent whose environment says RANK=rank)."""
    for child in Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split():
        try:
            environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if f"RANK={rank}".encode() in environment:
            return int(child)
    return None
