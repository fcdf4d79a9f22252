"""Load-balance statistics against hand-computed values."""

import math

import numpy as np
import pytest

from dsmoe.analysis.load_balance import (batch_max_vio, expert_loads, load_over_training, load_statistics,
                                         router_entropy_summary)


def mapped(tmp_path, array: np.ndarray) -> np.ndarray:
    np.save(tmp_path / "array.npy", array)
    return np.load(tmp_path / "array.npy", mmap_mode="r")


def test_a_perfectly_balanced_load_has_cv_and_maxvio_zero_and_entropy_one():
    stats = load_statistics(np.array([5, 5, 5, 5]))
    assert stats["cv"] == 0.0 and stats["max_vio"] == 0.0 and stats["dead"] == []
    assert stats["max_over_mean"] == 1.0 and stats["min_over_mean"] == 1.0 and stats["p5"] == 1.0
    assert stats["normalised_load_entropy"] == pytest.approx(1.0)


def test_a_skewed_load_by_hand():
    # [6, 2, 0, 0]: mean 2, MaxVio (6 - 2) / 2 = 2; std sqrt((16 + 0 + 4 + 4) / 4) = sqrt(6), cv sqrt(6) / 2.
    stats = load_statistics(np.array([6, 2, 0, 0]))
    assert stats["max_vio"] == pytest.approx(2.0)
    assert stats["cv"] == pytest.approx(math.sqrt(6) / 2)
    assert stats["dead"] == [2, 3]
    assert stats["max_over_mean"] == pytest.approx(3.0) and stats["min_over_mean"] == 0.0
    # load/mean sorted [0, 0, 1, 3]: p25 at rank 0.75 -> 0, p50 at 1.5 -> 0.5, p75 at 2.25 -> 1 + 0.25 * 2.
    assert (stats["p0"], stats["p25"], stats["p50"], stats["p75"], stats["p100"]) == pytest.approx((0, 0, 0.5, 1.5, 3))
    load_entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert stats["load_entropy"] == pytest.approx(load_entropy)
    assert stats["normalised_load_entropy"] == pytest.approx(load_entropy / math.log(4))


def test_a_layer_that_received_nothing_is_all_dead_and_not_nan():
    stats = load_statistics(np.zeros(3))
    assert stats["dead"] == [0, 1, 2] and stats["max_vio"] == 0.0
    assert not any(isinstance(value, float) and math.isnan(value) for value in stats.values())


def test_no_experts_is_refused():
    with pytest.raises(ValueError, match="n_experts >= 1"):
        load_statistics(np.zeros(0))


def test_dropped_pairs_are_not_load():
    assert expert_loads(np.array([[0, -1], [1, 0]], dtype=np.int16), 3).tolist() == [2, 1, 0]


@pytest.mark.parametrize("chunk_tokens", [1, 3, 1 << 20])
def test_chunked_loads_of_a_memmap_equal_a_plain_count(chunk_tokens, tmp_path):
    experts_TK = np.random.default_rng(0).integers(-1, 8, (101, 2)).astype(np.int16)
    expected = [int((experts_TK == e).sum()) for e in range(8)]
    assert expert_loads(mapped(tmp_path, experts_TK), 8, chunk_tokens).tolist() == expected


@pytest.mark.parametrize("chunk_tokens", [1, 1 << 20])
def test_batch_maxvio_of_two_batches_by_hand(chunk_tokens):
    # batch 1 (tokens 0-1): loads [2, 1, 1], mean 4/3 -> MaxVio (2 - 4/3) / (4/3) = 0.5;
    # batch 2 (tokens 2-3, one pair dropped): loads [0, 2, 1], mean 1 -> MaxVio 1.
    experts_TK = np.array([[0, 1], [0, 2], [1, -1], [2, 1]], dtype=np.int16)
    found = batch_max_vio(experts_TK, 3, tokens_per_batch=2, chunk_tokens=chunk_tokens)
    assert found["mean"] == pytest.approx(0.75) and found["max"] == pytest.approx(1.0)
    assert found["batches"] == 2 and found["tokens_left_out"] == 0


def test_a_last_partial_batch_is_left_out(tmp_path):
    # batches [0, 0] -> loads [2, 0], MaxVio 1 and [0, 1] -> 0; the lone last token (load [0, 1]) is left out.
    experts_TK = mapped(tmp_path, np.array([[0], [0], [0], [1], [1]], dtype=np.int16))
    found = batch_max_vio(experts_TK, 2, tokens_per_batch=2)
    assert (found["mean"], found["max"], found["batches"], found["tokens_left_out"]) == (0.5, 1.0, 2, 1)


def test_less_than_one_batch_has_no_batch_maxvio():
    found = batch_max_vio(np.zeros((3, 1), dtype=np.int16), 2, tokens_per_batch=4)
    assert found["mean"] is None and found["max"] is None and found["batches"] == 0


@pytest.mark.parametrize("chunk_tokens", [97, 1 << 20])
def test_router_entropy_summary_mean_and_quantiles(chunk_tokens, tmp_path):
    entropy_T = mapped(tmp_path, np.linspace(0.0, 2.0, 10001).astype(np.float32))
    found = router_entropy_summary(entropy_T, chunk_tokens)
    assert found["mean"] == pytest.approx(1.0, rel=1e-6)
    assert found["p50"] == pytest.approx(1.0, abs=0.002) and found["p95"] == pytest.approx(1.9, abs=0.002)


def test_router_entropy_summary_of_a_constant():
    assert router_entropy_summary(np.zeros(5, dtype=np.float32)) == {"mean": 0.0, "p50": 0.0, "p95": 0.0}


def test_load_over_training_from_metrics_records():
    records = [{"step": 1, "lm_loss": 3.0, "experts": {"1": {"tokens_per_expert": [4, 0], "dropped": 0, "cv": 1.0}}},
               {"step": 2, "val_loss": 2.9},
               {"step": 3, "experts": {"1": {"tokens_per_expert": [3, 1], "dropped": 2, "cv": 0.5}}}]
    series = load_over_training(records)
    assert list(series) == ["1"]
    # step 1: mean 2, max/mean 2, MaxVio 1, cv 2 / 2; step 3: max/mean 1.5, MaxVio 0.5, std 1, cv 0.5.
    assert series["1"]["step"] == [1, 3] and series["1"]["dead"] == [1, 0] and series["1"]["dropped"] == [0, 2]
    assert series["1"]["max_over_mean"] == pytest.approx([2.0, 1.5])
    assert series["1"]["max_vio"] == pytest.approx([1.0, 0.5]) and series["1"]["cv"] == pytest.approx([1.0, 0.5])
