"""Routing changes between two traces of the same tokens."""

import numpy as np
import pytest

from dsmoe.analysis.stability import check_same_tokens, expert_set_changes

A_TK = np.array([[0, 1], [2, 3], [1, 2], [3, -1]], dtype=np.int16)


def test_identical_traces_and_reordered_top_k_do_not_change():
    assert expert_set_changes(A_TK, A_TK)["changed_share"] == 0.0
    reordered = np.array([[1, 0], [3, 2], [2, 1], [3, -1]], dtype=np.int16)
    found = expert_set_changes(A_TK, reordered)
    assert found["changed_share"] == 0.0 and found["top1_changed_share"] == pytest.approx(0.75)
    assert found["mean_overlap"] == pytest.approx(7 / 8)  # the dropped slot overlaps nothing


@pytest.mark.parametrize("chunk_tokens", [1, 2, 100])
def test_one_token_with_one_other_expert(chunk_tokens):
    other = A_TK.copy()
    other[1] = [2, 0]
    found = expert_set_changes(A_TK, other, chunk_tokens)
    assert found["changed_share"] == pytest.approx(1 / 4)
    assert found["mean_overlap"] == pytest.approx(6 / 8)


def test_traces_of_other_shapes_or_tokens_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        expert_set_changes(A_TK, A_TK[:2])
    with pytest.raises(ValueError, match="different tokens"):
        check_same_tokens(np.array([1, 2, 3]), np.array([1, 2, 4]))
    with pytest.raises(ValueError, match="3 and 2 tokens"):
        check_same_tokens(np.array([1, 2, 3]), np.array([1, 2]))
