"""Batches: y is x shifted, batch(step) is a pure function of (seed, step), epochs cover every window once."""

import numpy as np
import pytest
import torch

from dsmoe.data import TrainBatches, val_batches
from dsmoe.data.batches import _epoch_order, epoch_shift

TOKENS = np.arange(1000, dtype=np.uint16)  # token value = position, so a window shows where it starts
SEQ_LEN, BATCH_SIZE = 8, 4


def test_a_batch_is_int64_x_and_y_of_batch_size_by_seq_len():
    x, y = TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=0).batch(0)
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (BATCH_SIZE, SEQ_LEN)


def test_y_is_x_shifted_by_one_token_from_a_window_start():
    x, y = TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=0).batch(3)
    assert torch.equal(y, x + 1) and bool((x[:, 0] % SEQ_LEN == 0).all())


def test_resumed_batches_equal_those_of_an_uninterrupted_run():
    uninterrupted = TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=7)
    expected = [uninterrupted.batch(step) for step in range(10)][5:]
    _epoch_order.cache_clear()  # a resumed process starts with nothing remembered
    resumed = TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=7)
    for (x_expected, y_expected), step in zip(expected, range(5, 10)):
        x, y = resumed.batch(step)
        assert torch.equal(x, x_expected) and torch.equal(y, y_expected)


def test_different_seeds_give_different_orders():
    first, second = (TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=seed).batch(0)[0] for seed in (0, 1))
    assert not torch.equal(first, second)


def test_each_epoch_visits_every_window_once_even_across_batch_boundaries():
    batches = TrainBatches(TOKENS, SEQ_LEN, batch_size=5, seed=0)  # 124 windows: epochs end mid-batch
    starts = torch.cat([batches.batch(step)[0][:, 0] for step in range(2 * 124 // 5 + 1)])
    assert sorted(starts[:124].tolist()) == sorted(starts[124:248].tolist()) == list(range(0, 992, SEQ_LEN))


def test_val_batches_are_the_contiguous_windows_in_order_then_the_tail():
    batches = list(val_batches(TOKENS, SEQ_LEN, batch_size=50))
    assert [tuple(x.shape) for x, _ in batches] == [(50, SEQ_LEN), (50, SEQ_LEN), (24, SEQ_LEN), (1, 7)]
    assert torch.equal(torch.cat([x for x, _ in batches[:-1]])[:, 0], torch.arange(0, 992, SEQ_LEN))
    targets = torch.cat([y.flatten() for _, y in batches])
    assert torch.equal(targets, torch.arange(1, 1000))  # every token but the first predicted once

def test_max_val_batches_spread_evenly_over_the_whole_split():
    xs = [x for x, _ in val_batches(TOKENS, SEQ_LEN, batch_size=4, max_batches=2)]
    assert [len(x) for x in xs] == [4, 4]
    starts = torch.cat(xs)[:, 0]
    assert starts[0] == 0 and starts[-1] == 984  # the first and the last of the 124 windows
    assert starts.unique().numel() == 8 and bool((starts.diff() > 100).all())
    assert len(list(val_batches(TOKENS, SEQ_LEN, batch_size=50, max_batches=3))) == 3  # 3 x 50 > 124: all


def test_too_few_tokens_for_one_sequence_raise_with_both_counts():
    with pytest.raises(ValueError, match=r"has 8 tokens, fewer than the seq_len \+ 1 = 9"):
        TrainBatches(TOKENS[:8], SEQ_LEN, BATCH_SIZE, seed=0)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
    ({"seq_len": -1}, "seq_len=-1 must be a positive integer"),
    ({"seed": -1}, "seed=-1 must be an integer >= 0"),
])
def test_bad_arguments_raise_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message):
        TrainBatches(TOKENS, **{"seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "seed": 0, **arguments})


def test_shifted_windows_keep_the_first_epoch_and_move_each_later_epoch_by_its_own_offset():
    batches = TrainBatches(TOKENS, SEQ_LEN, batch_size=5, seed=0, shift_windows=True)
    n = batches.n_windows
    assert n == (len(TOKENS) - SEQ_LEN) // SEQ_LEN  # windows that fit after any shift of at most SEQ_LEN - 1
    starts = torch.cat([batches.batch(step)[0][:, 0] for step in range(4 * n // 5 + 1)])[:4 * n]
    shifts = []
    for epoch in range(4):
        epoch_starts = starts[epoch * n:(epoch + 1) * n]
        shift = int(epoch_starts[0]) % SEQ_LEN
        assert sorted(epoch_starts.tolist()) == list(range(shift, shift + n * SEQ_LEN, SEQ_LEN))
        shifts.append(shift)
    assert shifts[0] == 0 and len(set(shifts)) > 1
    assert int(starts.max()) + SEQ_LEN + 1 <= len(TOKENS)  # every window, shifted, lies inside the tokens


def test_shifted_windows_visit_windows_in_the_same_order_and_resume_exactly():
    fixed = TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=3, shift_windows=True)
    x, y = fixed.batch(40)  # epoch 1 (124 windows, 4 a batch)
    assert torch.equal(y, x + 1)
    shift = int(x[0, 0]) % SEQ_LEN
    assert bool(((x[:, 0] - shift) % SEQ_LEN == 0).all())
    _epoch_order.cache_clear()
    epoch_shift.cache_clear()  # a resumed process starts with nothing remembered
    assert torch.equal(TrainBatches(TOKENS, SEQ_LEN, BATCH_SIZE, seed=3, shift_windows=True).batch(40)[0], x)
    assert epoch_shift(SEQ_LEN, 3, 1) != epoch_shift(SEQ_LEN, 4, 1) or epoch_shift(SEQ_LEN, 3, 2) != \
        epoch_shift(SEQ_LEN, 4, 2)  # the shifts come from the seed


def test_shifting_needs_room_for_one_window_after_the_largest_shift():
    with pytest.raises(ValueError, match="the training tokens less seq_len - 1 has"):
        TrainBatches(TOKENS[:SEQ_LEN + 1], SEQ_LEN, BATCH_SIZE, seed=0, shift_windows=True)
