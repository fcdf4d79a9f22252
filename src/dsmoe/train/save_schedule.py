"""When a checkpoint is due by time: the interval doubles from one minute up to train.save_every_min, so a run
killed in its first minutes keeps a recent checkpoint while a long run saves no more often than asked."""

from __future__ import annotations

FIRST_SAVE_MIN = 1.0


def save_interval_min(every_min: float, last_save_min: float) -> float:
    """Minutes from a checkpoint written `last_save_min` minutes into this session (0: its start) to the next."""
    return min(every_min, max(FIRST_SAVE_MIN, last_save_min))


def doubling_saves_min(every_min: float) -> list[float]:
    """The minutes of the session at which checkpoints come before the interval reaches `every_min`."""
    times, last = [], 0.0
    while (interval := save_interval_min(every_min, last)) < every_min:
        last += interval
        times.append(last)
    return times
