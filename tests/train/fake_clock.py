"""A fake clock for the time rules (time budget, checkpoints by time, the progress bar): tests move it by hand."""

import pytest
import tqdm.std

from dsmoe.train import loop, progress

SECONDS_PER_STEP = 6.0  # what a step takes on the clock of slow_steps


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The clock TrainingProgress and the progress bar read, at 0 s until a test moves it."""
    now = [0.0]
    monkeypatch.setattr(progress, "perf_counter", lambda: now[0])
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    return now


@pytest.fixture
def slow_steps(clock, monkeypatch):
    """Each step's forward and backward take SECONDS_PER_STEP on the clock."""
    real = loop.accumulate_gradients

    def slow(*args):
        clock[0] += SECONDS_PER_STEP
        return real(*args)
    monkeypatch.setattr(loop, "accumulate_gradients", slow)
