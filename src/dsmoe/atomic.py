"""Atomic writes, of one file or of a whole directory: a reader, or a re-run after a crash or a full disk, sees the
old content or the complete new one, never a part.

Both forms write into a temporary beside the target (rename is atomic only within one file system), fsync what
was written (so a power cut cannot leave a renamed but empty file), rename it into place and fsync the parent
(so the rename itself survives). On any failure the temporary is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".", ".tmp"  # .NAME.RANDOM.tmp beside NAME: hidden from listings, and findable
LISTED_ENTRIES = 5  # a refusal names this many of a directory's entries


def fsync(path: Path) -> None:
    """Flush one file, or one directory's entries, to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path: Path) -> None:
    """fsync `path` and, when it is a directory, everything under it."""
    for entry in path.rglob("*") if path.is_dir() else ():
        fsync(entry)
    fsync(path)


def remove(path: Path) -> None:
    """Delete a file or a directory tree; nothing there is fine."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_temporaries(*targets: Path) -> None:
    """Delete the temporaries that writes of `targets` killed midway (SIGKILL, power cut) left beside them; a
    target's name may be a glob (checkpoints/step_*). Only those names: another hidden .tmp file is someone else's.
    Call it only where no other process may be writing (dsmoe.runs.lock), or a live write loses its temporary."""
    for target in map(Path, targets):
        for temporary in target.parent.glob(temporary_pattern(target.name)):
            remove(temporary)


def temporary_pattern(name: str) -> str:
    """The glob of the temporaries written for `name` (itself a name or a glob)."""
    return f"{TEMPORARY_PREFIX}{name}.*{TEMPORARY_SUFFIX}"


def listed(names: list[str]) -> str:
    """The first LISTED_ENTRIES of `names`, for a message."""
    return ", ".join(names[:LISTED_ENTRIES]) + (" ..." if len(names) > LISTED_ENTRIES else "")


def check_new_directory(path: str | Path) -> None:
    """Refuse a `path` that exists and is not an empty directory, naming what it holds: nothing there is ever
    overwritten. Callers check it before any work, atomic_directory once more before writing."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    held = f" (it holds {listed(sorted(entry.name for entry in path.iterdir()))})" if path.is_dir() else ""
    raise ValueError(f"output {str(path)!r} exists and is not an empty directory{held}; choose another --out")


@contextmanager
def _atomic(path: Path, directory: bool, replace: bool = False) -> Iterator[Path]:
    """The protocol both forms share: a temporary file or directory beside `path`, yielded to be filled, then
    fsynced and renamed to `path` (deleting an existing `path` first if `replace`); removed whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    beside = {"dir": path.parent, "prefix": f"{TEMPORARY_PREFIX}{path.name}.", "suffix": TEMPORARY_SUFFIX}
    if directory:
        temporary = Path(tempfile.mkdtemp(**beside))
    else:
        descriptor, name = tempfile.mkstemp(**beside)
        os.close(descriptor)  # the block opens the file by its path
        temporary = Path(name)
    try:
        yield temporary
        fsync_tree(temporary)
        if replace:
            remove(path)  # os.replace moves a directory only onto an empty one
        os.replace(temporary, path)
        fsync(path.parent)
    finally:
        remove(temporary)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield the path of an empty temporary file beside `path`; it replaces `path` only if the block finishes."""
    with _atomic(Path(path), directory=False) as temporary:
        yield temporary


@contextmanager
def atomic_directory(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; it is renamed to `path` only if the block finishes.

    Without `replace`, `path` must not exist or be an empty directory, so nothing is ever overwritten (checked
    before the block runs). With it, an existing `path` is deleted just before the rename (a checkpoint saved
    again at the same step): the caller has checked that everything in it is its own.
    """
    path = Path(path)
    if not replace:
        check_new_directory(path)
    with _atomic(path, directory=True, replace=replace) as temporary:
        yield temporary
