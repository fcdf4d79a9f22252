"""What `dsmoe` exits with: 0 done, 1 training failed, 2 bad input or setup, 128 + N stopped by signal N."""

from __future__ import annotations

import signal

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report Ctrl-C
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141: the reader of stdout went away (dsmoe ... | head)


def for_stop(stopped_early: str | None) -> int:
    """A run stopped by a signal (it saved a checkpoint first) exits as the signal would have, so that a script
    running `dsmoe train && dsmoe eval` does not go on; a run stopped by its time budget is done."""
    if stopped_early in signal.Signals.__members__:
        return 128 + signal.Signals[stopped_early]
    return EXIT_OK
