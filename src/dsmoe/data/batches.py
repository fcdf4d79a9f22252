"""Batches of (input, target) windows: training batches as a pure function of (seed, step), val in order.

A window is seq_len + 1 consecutive tokens starting at a multiple of seq_len; x is its first seq_len
tokens and y its last seq_len (y is x shifted by one), so windows never overlap in their targets. With
shift_windows, every training epoch after the first moves that grid by its own offset in [0, seq_len), so a
corpus seen several times is not cut into the same sequences each time: each token comes back in another
context and at another position, which a small corpus otherwise lets the model memorise.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch


def count_windows(n_tokens: int, seq_len: int, what: str = "the token array") -> int:
    """How many non-overlapping windows of seq_len + 1 tokens fit in `n_tokens`; raises when none does."""
    if n_tokens < seq_len + 1:
        raise ValueError(
            f"{what} has {n_tokens} tokens, fewer than the seq_len + 1 = {seq_len + 1} needed for one "
            "sequence (use more text or a smaller seq_len)"
        )
    return (n_tokens - 1) // seq_len


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer")


def _gather(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    windows_BL = tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    return torch.from_numpy(windows_BL[:, :-1].copy()), torch.from_numpy(windows_BL[:, 1:].copy())


def _epoch_generator(seed: int, epoch: int, *stream: int) -> torch.Generator:
    """A generator seeded from (seed, epoch) and, for draws other than the epoch's order, a stream number."""
    mixed_seed = int(np.random.SeedSequence([seed, epoch, *stream]).generate_state(1, np.uint64)[0])
    return torch.Generator("cpu").manual_seed(mixed_seed)


@lru_cache(maxsize=4)  # a batch touches at most a few epochs; keep their orders instead of redrawing
def _epoch_order(n_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` visits the windows: a permutation drawn from (seed, epoch) alone."""
    order = torch.randperm(n_windows, generator=_epoch_generator(seed, epoch), device="cpu").numpy()
    order.flags.writeable = False
    return order


SHIFT_STREAM = 1


@lru_cache(maxsize=64)
def epoch_shift(seq_len: int, seed: int, epoch: int) -> int:
    """Where epoch `epoch` starts its window grid: 0 for the first epoch, then drawn in [0, seq_len) from (seed,
    epoch) alone (a stream of its own: the epoch's order is the same with or without shifts)."""
    if epoch == 0:
        return 0
    return int(torch.randint(seq_len, (1,), generator=_epoch_generator(seed, epoch, SHIFT_STREAM), device="cpu"))


class TrainBatches:
    """Shuffled training batches; `batch(step)` depends only on (tokens, seq_len, batch_size, seed, step).

    The batches form one stream of windows: position p = step * batch_size + row is window
    order(epoch)[p % n_windows] with epoch = p // n_windows, so every epoch visits every window once
    and resuming at step k gives the batches an uninterrupted run would have drawn. With shift_windows, window
    w of an epoch starts at epoch_shift(epoch) + w * seq_len, and an epoch holds the windows that fit after the
    largest shift (seq_len - 1), so that every shift fits the same number of windows.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int,
                 shift_windows: bool = False) -> None:
        _check_positive(seq_len=seq_len, batch_size=batch_size)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0")
        self.tokens, self.seq_len, self.batch_size, self.seed = tokens, seq_len, batch_size, seed
        self.shift_windows = shift_windows
        self.n_windows = count_windows(len(tokens), seq_len, "the training tokens")
        if shift_windows:  # the windows of the grid shifted by seq_len - 1
            self.n_windows = count_windows(len(tokens) - (seq_len - 1), seq_len, "the training tokens less seq_len - 1")

    def epoch(self, step: int) -> float:
        """How many passes over the training windows the batches before `step` make."""
        return step * self.batch_size / self.n_windows

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), int64 tensors of shape [batch_size, seq_len]; y[:, t] is the token that follows x[:, t]."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step={step!r} must be an integer >= 0")
        positions = step * self.batch_size + np.arange(self.batch_size)
        epochs, offsets = np.divmod(positions, self.n_windows)
        starts = np.array([_epoch_order(self.n_windows, self.seed, int(epoch))[offset] * self.seq_len
                           + (epoch_shift(self.seq_len, self.seed, int(epoch)) if self.shift_windows else 0)
                           for epoch, offset in zip(epochs, offsets)])
        return _gather(self.tokens, starts, self.seq_len)


def val_batches(tokens: np.ndarray, seq_len: int, batch_size: int,
                max_batches: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every non-overlapping window of `tokens` in order (the last batch may be smaller), then the tokens after
    the last full window as one shorter window, so every token but the first is predicted once; with
    `max_batches`, at most that many full batches of windows spread evenly over the whole split (not its
    beginning, which would score one part of the text: a quick evaluation must estimate the full one).

    For one domain pass `split.domain_tokens(domain)` as `tokens`.
    """
    _check_positive(seq_len=seq_len, batch_size=batch_size)
    n_windows = count_windows(len(tokens), seq_len, "the val tokens")
    starts = np.arange(n_windows) * seq_len
    if max_batches is not None:
        _check_positive(max_batches=max_batches)
        if max_batches * batch_size < len(starts):
            starts = starts[np.linspace(0, len(starts) - 1, max_batches * batch_size).round().astype(int)]
    for first in range(0, len(starts), batch_size):
        yield _gather(tokens, starts[first:first + batch_size], seq_len)
    tail = len(tokens) - 1 - n_windows * seq_len
    if max_batches is None and tail:
        yield _gather(tokens, np.array([n_windows * seq_len]), tail)
