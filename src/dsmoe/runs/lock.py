"""One process at a time trains a run directory: an exclusive flock on RUN/train.lock (RunDir.lock_path).

Training holds it from before it writes anything in the run until it returns; the file names the holder (pid,
host, start time, command) for the message a second process refuses with. The kernel drops a flock when its
process dies, however it dies, so a file left by a killed run is not a held lock: the next run takes it over. A run
that returns removes the file. (On NFS, Linux turns a flock into an NFS lock, so it holds across hosts too.)

Readers (eval, generate, convert) take no lock: a checkpoint appears by an atomic rename and is verified against its
manifest on load (runs.checkpoint), so a reader never sees a half-written one, whatever a trainer is doing. (One that
train.keep_last deletes while it is being opened fails with FileNotFoundError; run the reader again.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dsmoe.runs.layout import RunDir


def holder() -> dict:
    """What the lock file says about this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}


def in_use_message(run: RunDir, written: bytes) -> str:
    try:
        held = json.loads(written)
        by = f"pid {held['pid']} on host {held['host']} since {held['since']} ({held['command']})"
    except (ValueError, TypeError, KeyError):  # the holder has not written its name yet
        by = "another process"
    return f"run directory {str(run.path)!r} is in use by {by}; wait for it or choose another --out"


def is_lock_record(written: bytes) -> bool:
    """Whether `written` is what a lock file holds: nothing yet, or its holder (here, a killed run's)."""
    if not written:
        return True
    try:
        held = json.loads(written)
    except ValueError:
        return False
    return isinstance(held, dict) and {"pid", "host"} <= held.keys()


def is_the_file_at(descriptor: int, path: Path) -> bool:
    """Whether `descriptor` is still the file at `path` (a holder removes its file as it lets go)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (opened.st_dev, opened.st_ino) == (found.st_dev, found.st_ino)


def acquire(run: RunDir) -> int:
    """The descriptor of RUN/train.lock, locked and naming this process; a ValueError naming the holder if held."""
    while True:
        descriptor = os.open(run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            written = os.read(descriptor, 4096)
            os.close(descriptor)
            raise ValueError(in_use_message(run, written)) from None
        if is_the_file_at(descriptor, run.lock_path):
            break
        os.close(descriptor)  # locked a file its holder removed as it let go: open the one now at the path
    if not is_lock_record(os.pread(descriptor, 4096, 0)):
        os.close(descriptor)
        raise ValueError(f"{run.lock_path} is not a dsmoe lock file, and training would overwrite it: move it, or "
                         "choose another --out")
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(holder()).encode())
    return descriptor


@contextlib.contextmanager
def lock_run(run: RunDir) -> Iterator[None]:
    """Hold the run's lock for the block (creating the run directory; removed again if the block leaves it empty)."""
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {str(run.path)!r} is a file, not a directory")
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    descriptor = acquire(run)
    try:
        yield
    finally:
        run.lock_path.unlink(missing_ok=True)  # while still held, so that no one can lock this file unseen
        os.close(descriptor)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                run.path.rmdir()
