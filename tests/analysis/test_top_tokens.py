"""Highest-weight positions per expert and their context, against a plain sort."""

import numpy as np
import pytest

from dsmoe.analysis.top_tokens import highest_weight_positions, in_context


def brute_force(experts_TK, weights_TK, n_experts, top_n):
    found = []
    for expert in range(n_experts):
        pairs = [(int(t), float(weights_TK[t, k])) for t in range(len(experts_TK)) for k in range(experts_TK.shape[1])
                 if experts_TK[t, k] == expert]
        found.append(sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:top_n])
    return found


@pytest.mark.parametrize("chunk_tokens", [1, 7, 1000])
def test_matches_a_plain_sort_whatever_the_chunk_size(chunk_tokens):
    rng = np.random.default_rng(0)
    experts_TK = np.stack([rng.permutation(6)[:2] for _ in range(200)]).astype(np.int16)
    experts_TK[rng.random(experts_TK.shape) < 0.1] = -1
    weights_TK = np.round(rng.random(experts_TK.shape), 2).astype(np.float32)  # rounded: ties occur
    found = highest_weight_positions(experts_TK, weights_TK, 6, top_n=5, chunk_tokens=chunk_tokens)
    expected = brute_force(experts_TK, weights_TK, 6, 5)
    assert [[p for p, _ in row] for row in found] == [[p for p, _ in row] for row in expected]
    assert np.allclose([w for row in found for _, w in row], [w for row in expected for _, w in row])


def test_an_expert_never_chosen_has_no_positions_and_dropped_pairs_are_no_candidates():
    experts_TK = np.array([[0, -1], [0, -1]], dtype=np.int16)
    weights_TK = np.array([[0.5, 0.9], [0.7, 0.0]], dtype=np.float32)
    found = highest_weight_positions(experts_TK, weights_TK, 2, top_n=3)
    assert found[0] == [(1, pytest.approx(0.7)), (0, pytest.approx(0.5))]
    assert found[1] == []


def test_context_is_the_text_around_and_says_where_in_its_window():
    token_ids_T = np.arange(20)
    decode = lambda ids: " ".join(map(str, ids))  # noqa: E731
    assert in_context(token_ids_T, 11, 10, decode, before=3, after=2) == {"before": "8 9 10", "token": "11",
                                                                        "after": "12 13", "in_window": 1}
    assert in_context(token_ids_T, 18, 10, decode, before=2, after=3) == {"before": "16 17", "token": "18",
                                                                        "after": "19", "in_window": 8}
