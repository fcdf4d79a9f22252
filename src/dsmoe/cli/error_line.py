"""The one line a failed `dsmoe` prints on stderr, and which process prints it under torchrun, where every rank runs
the same command: what the ranks meet alike (a mistake on the command line, a refusal before they joined, an agreed
stop) rank 0 alone says, so it is said once; what a rank meets after joining may be its own, so that rank says it,
naming itself.

A rank other than 0 with a shared error waits for rank 0 before it exits: exiting first would have torchrun stop
rank 0 (SIGTERM) before it has said why. Rank 0 exits meanwhile and torchrun stops the waiting rank; if the wait
runs out instead, rank 0 did not meet the error, so it was this rank's own, and it says it.
"""

from __future__ import annotations

import os
import sys
import time

RANK_ZERO_GRACE_S = 15.0  # how long a rank waits for rank 0 to end the job: it meets the same error within seconds


def torchrun_rank() -> str | None:
    """This process's rank in a torchrun job of several (RANK, else LOCAL_RANK); None when it runs alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK"))


def say_error(prefix: str, message: str, shared: bool = True) -> None:
    """Print `PREFIX: error: MESSAGE`, once per job (see the module docstring); `shared`: every rank meets it."""
    rank = torchrun_rank()
    if rank in (None, "0"):
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return
    if shared:
        time.sleep(RANK_ZERO_GRACE_S)
    print(f"{prefix}: error: rank {rank}: {message}", file=sys.stderr)
