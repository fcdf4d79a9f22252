"""Load-balance statistics against hand-computed values."""

import math

import numpy as np
import pytest

from dsmoe.analysis.load_balance import (batch_max_vio, expert_loads, load_over_training, load_statistics,
                                         router_entropy_summary)


def test_a_perfectly_balanced_load_has_cv_and_maxvio_zero_and_entropy_one():
    stats = load_statistics(np.array([5, 5, 5, 5]))
    assert stats["cv"] == 0.0 and stats["max_vio"] == 0.0 and stats["dead"] == []
    assert stats["normalised_load_entropy"] == pytest.approx(1.0)


def test_a_skewed_load_by_hand():
    # mean 2: MaxVio (6 - 2) / 2 = 2; std = sqrt((16 + 0 + 4 + 4) / 4) = sqrt(6), cv = sqrt(6) / 2.
    stats = load_statistics(np.array([6, 2, 0, 0]))
    assert stats["max_vio"] == pytest.approx(2.0)
    assert stats["cv"] == pytest.approx(math.sqrt(6) / 2)
    assert stats["dead"] == [2, 3]
    assert stats["max_over_mean"] == pytest.approx(3.0) and stats["min_over_mean"] == 0.0
    assert stats["p100"] == pytest.approx(3.0) and stats["p0"] == 0.0
    p = np.array([0.75, 0.25])
    assert stats["load_entropy"] == pytest.approx(-(p * np.log(p)).sum())


def test_a_layer_that_received_nothing_is_all_dead_and_not_nan():
    stats = load_statistics(np.zeros(3))
    assert stats["dead"] == [0, 1, 2] and stats["max_vio"] == 0.0 and not math.isnan(stats["cv"])


def test_dropped_pairs_are_not_load():
    assert expert_loads(np.array([[0, -1], [1, 0]], dtype=np.int16), 3).tolist() == [2, 1, 0]


def test_batch_maxvio_of_two_batches_by_hand():
    # batch 1 (tokens 0-1): loads [2, 0] -> MaxVio 1; batch 2 (tokens 2-3): [1, 1] -> 0.
    experts_TK = np.array([[0], [0], [0], [1]], dtype=np.int16)
    found = batch_max_vio(experts_TK, 2, tokens_per_batch=2)
    assert found["mean"] == pytest.approx(0.5) and found["max"] == pytest.approx(1.0) and found["batches"] == 2


@pytest.mark.parametrize("chunk_tokens", [1, 3, 1 << 20])
def test_chunking_does_not_change_loads(chunk_tokens, tmp_path):
    rng = np.random.default_rng(0)
    experts_TK = rng.integers(-1, 8, (101, 2)).astype(np.int16)
    np.save(tmp_path / "e.npy", experts_TK)
    mapped = np.load(tmp_path / "e.npy", mmap_mode="r")
    expected = [int((experts_TK == e).sum()) for e in range(8)]
    assert expert_loads(mapped, 8, chunk_tokens).tolist() == expected


def test_router_entropy_summary_mean_and_quantiles():
    entropy_T = np.linspace(0.0, 2.0, 10001).astype(np.float32)
    found = router_entropy_summary(entropy_T, chunk_tokens=97)
    assert found["mean"] == pytest.approx(1.0, rel=1e-6)
    assert found["p50"] == pytest.approx(1.0, abs=0.005) and found["p95"] == pytest.approx(1.9, abs=0.005)


def test_load_over_training_from_metrics_records():
    records = [{"step": 1, "lm_loss": 3.0, "experts": {"1": {"tokens_per_expert": [4, 0], "dropped": 0}}},
               {"step": 2, "val_loss": 2.9},
               {"step": 3, "experts": {"1": {"tokens_per_expert": [2, 2], "dropped": 1}}}]
    series = load_over_training(records)["1"]
    assert series["step"] == [1, 3] and series["max_vio"] == pytest.approx([1.0, 0.0])
    assert series["dead"] == [1, 0] and series["dropped"] == [0, 1] and series["cv"] == pytest.approx([1.0, 0.0])
