"""Routing changes between two traces of the same tokens."""

import numpy as np
import pytest

from dsmoe.analysis.stability import check_same_tokens, expert_set_changes

A_TK = np.array([[0, 1], [2, 3], [1, 2], [3, -1]], dtype=np.int16)


def set_changes_by_python_sets(a_TK: np.ndarray, b_TK: np.ndarray) -> dict:
    """The slow obvious twin of expert_set_changes: one token at a time, with Python sets."""
    sets = [({int(e) for e in a if e >= 0}, {int(e) for e in b if e >= 0}) for a, b in zip(a_TK, b_TK)]
    return {"changed_share": np.mean([a != b for a, b in sets]),
            "mean_overlap": np.mean([len(a & b) / a_TK.shape[1] for a, b in sets]),
            "top1_changed_share": np.mean(a_TK[:, 0] != b_TK[:, 0])}


def test_identical_traces_do_not_change():
    found = expert_set_changes(A_TK, A_TK)
    assert found["changed_share"] == 0.0 and found["top1_changed_share"] == 0.0
    assert found["mean_overlap"] == pytest.approx(7 / 8)  # 7 kept pairs of 8 slots: the dropped one overlaps nothing


def test_a_reordered_top_k_is_the_same_set():
    reordered = np.array([[1, 0], [3, 2], [2, 1], [3, -1]], dtype=np.int16)
    found = expert_set_changes(A_TK, reordered)
    assert found["changed_share"] == 0.0 and found["mean_overlap"] == pytest.approx(7 / 8)
    assert found["top1_changed_share"] == pytest.approx(3 / 4)  # all but the token with one kept pair


@pytest.mark.parametrize("chunk_tokens", [1, 2, 100])
def test_one_token_with_one_other_expert_is_one_in_t(chunk_tokens):
    other = A_TK.copy()
    other[1] = [2, 0]
    found = expert_set_changes(A_TK, other, chunk_tokens)
    assert found["changed_share"] == pytest.approx(1 / 4) and found["top1_changed_share"] == 0.0
    assert found["mean_overlap"] == pytest.approx(6 / 8)


def test_a_newly_dropped_pair_changes_the_set():
    other = A_TK.copy()
    other[0] = [0, -1]
    found = expert_set_changes(A_TK, other)
    assert found["changed_share"] == pytest.approx(1 / 4) and found["mean_overlap"] == pytest.approx(6 / 8)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 1 << 20])
def test_chunked_memmaps_agree_with_python_sets(chunk_tokens, tmp_path):
    rng = np.random.default_rng(0)
    experts_a_TK, experts_b_TK = (np.stack([rng.permutation(6)[:3] for _ in range(50)]).astype(np.int16)
                                  for _ in range(2))
    experts_b_TK[::5, 2] = -1
    for name, array in (("a", experts_a_TK), ("b", experts_b_TK)):
        np.save(tmp_path / f"{name}.npy", array)
    found = expert_set_changes(np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r"),
                               chunk_tokens)
    assert found == pytest.approx(set_changes_by_python_sets(experts_a_TK, experts_b_TK))


def test_traces_of_other_shapes_are_refused_naming_both():
    with pytest.raises(ValueError, match=r"\(4, 2\) and \(2, 2\)"):
        expert_set_changes(A_TK, A_TK[:2])


@pytest.mark.parametrize("chunk_tokens", [1, 1 << 20])
def test_traces_of_other_tokens_are_refused(chunk_tokens):
    check_same_tokens(np.array([1, 2, 3]), np.array([1, 2, 3]), chunk_tokens)
    with pytest.raises(ValueError, match="first at position 2: token id 3 against 4"):
        check_same_tokens(np.array([1, 2, 3]), np.array([1, 2, 4]), chunk_tokens)
    with pytest.raises(ValueError, match="3 and 2 tokens"):
        check_same_tokens(np.array([1, 2, 3]), np.array([1, 2]), chunk_tokens)
