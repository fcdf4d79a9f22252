"""Co-activation and distinct expert combinations against hand-computed values."""

import numpy as np
import pytest

from dsmoe.analysis.coactivation import coactivation_counts, coactivation_ratio, distinct_combinations

# Token sets {0, 1, 2}, {0, 1}, {0, 3}: pairs 01 twice, 02, 12, 03 once; activations 3, 2, 1, 1.
THREE_TOKENS_TK = np.array([[0, 1, 2], [1, 0, -1], [3, -1, 0]], dtype=np.int16)


def test_coactivation_counts_for_three_tokens():
    expected = np.array([[3, 2, 1, 1],
                         [2, 2, 1, 0],
                         [1, 1, 1, 0],
                         [1, 0, 0, 1]])
    assert np.array_equal(coactivation_counts(THREE_TOKENS_TK, 4), expected)


def test_coactivation_ratio_divides_by_the_row_experts_activations():
    ratio = coactivation_ratio(coactivation_counts(THREE_TOKENS_TK, 4))
    assert ratio[0] == pytest.approx([0, 2 / 3, 1 / 3, 1 / 3])
    assert ratio[3] == pytest.approx([1, 0, 0, 0])


def test_distinct_combinations_count_sets_of_tokens_with_all_pairs_kept():
    experts_TK = np.array([[1, 0], [0, 1], [2, 3], [0, -1]], dtype=np.int16)
    assert distinct_combinations(experts_TK, 4) == {"distinct": 2, "possible": 6, "tokens": 3}
