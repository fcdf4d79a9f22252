"""The bounded queue of sequences waiting for a slot: first come, first served, shared by the submitting threads
and the engine's."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsmoe.serve.sequence import Sequence


class QueueFull(RuntimeError):
    """Raised by submit when the request's sequences do not fit in the waiting queue (a server answers 429)."""


class WaitingQueue:
    """At most max_queue waiting sequences; a submitter's put_all wakes an engine that waits for work."""

    def __init__(self, max_queue: int):
        self.max_queue = max_queue
        self.sequences: deque[Sequence] = deque()
        self.changed = threading.Condition()

    def __len__(self) -> int:
        return len(self.sequences)

    def put_all(self, sequences: list[Sequence]) -> None:
        """All of them or, when they do not fit, none (QueueFull)."""
        with self.changed:
            if len(self.sequences) + len(sequences) > self.max_queue:
                raise QueueFull(f"the queue holds max_queue={self.max_queue} waiting sequences and "
                                f"{len(self.sequences)} wait; {len(sequences)} more do not fit, try again later")
            self.sequences.extend(sequences)
            self.changed.notify_all()

    def take(self, count: int) -> list[Sequence]:
        """Up to `count` sequences, the longest waiting first."""
        with self.changed:
            return [self.sequences.popleft() for _ in range(min(count, len(self.sequences)))]

    def take_cancelled(self) -> list[Sequence]:
        """The waiting sequences whose clients cancelled them, out of the queue."""
        with self.changed:
            cancelled = [sequence for sequence in self.sequences if sequence.stream.cancelled]
            self.sequences = deque(sequence for sequence in self.sequences if not sequence.stream.cancelled)
            return cancelled

    def wait(self, timeout: float) -> None:
        """Block until a sequence waits, wake() is called, or timeout seconds pass."""
        with self.changed:
            if not self.sequences:
                self.changed.wait(timeout)

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()
