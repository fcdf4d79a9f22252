"""Domain and vocabulary specialisation against hand-computed values."""

import math

import numpy as np
import pytest

from dsmoe.analysis.chunks import pair_counts
from dsmoe.analysis.specialisation import (domain_expert_nmi, domain_expert_share, normalised_mutual_information,
                                           over_represented_tokens, shuffled_nmi, token_occurrences, top_expert_share,
                                           vocabulary_specialisation)

DOMAINS_T = np.array([0, 0, 1, 1], dtype=np.int16)


def test_domains_with_one_expert_each_give_one_hot_shares_and_nmi_one():
    experts_TK = np.array([[0], [0], [1], [1]], dtype=np.int16)
    assert np.array_equal(domain_expert_share(experts_TK, DOMAINS_T, 2, 2), np.eye(2))
    assert domain_expert_nmi(experts_TK, DOMAINS_T, 2, 2) == pytest.approx(1.0)


def test_disjoint_pairs_of_experts_give_the_geometric_mean_normalisation():
    # I = H(D) = ln 2, H(E) = ln 4: NMI = ln 2 / sqrt(ln 2 * 2 ln 2) = 1 / sqrt(2).
    experts_TK = np.array([[0, 1], [1, 0], [2, 3], [3, 2]], dtype=np.int16)
    assert domain_expert_nmi(experts_TK, DOMAINS_T, 2, 4) == pytest.approx(1 / math.sqrt(2))


def test_an_exactly_independent_table_gives_nmi_zero():
    assert normalised_mutual_information(np.array([[1, 2, 3], [2, 4, 6]])) == pytest.approx(0.0, abs=1e-12)


def test_uniform_routing_independent_of_domain_gives_nmi_near_zero():
    # Under independence 2 N I ~ chi^2 with (D-1)(E-1) degrees of freedom: bound I by its mean + 6 sd.
    n_pairs, n_domains, n_experts = 20_000, 4, 8
    rng = np.random.default_rng(0)
    domains_T = rng.integers(0, n_domains, n_pairs)
    experts_TK = rng.integers(0, n_experts, (n_pairs, 1))
    dof = (n_domains - 1) * (n_experts - 1)
    bound = (dof + 6 * math.sqrt(2 * dof)) / (2 * n_pairs) / math.sqrt(0.99 * math.log(n_domains) * math.log(n_experts))
    assert domain_expert_nmi(experts_TK, domains_T, n_domains, n_experts) < bound


def test_the_chance_level_keeps_the_totals_and_sits_far_below_a_specialised_tables_nmi():
    specialised_AE = np.array([[900, 100, 0, 0], [0, 0, 600, 400]])
    assert shuffled_nmi(specialised_AE) < 0.01 < normalised_mutual_information(specialised_AE)
    assert shuffled_nmi(specialised_AE) == shuffled_nmi(specialised_AE)  # seeded: the same every time


def test_the_chance_level_is_what_shuffling_the_domains_gives():
    # 2,000 pairs of 4 domains over 8 experts, independent: the observed NMI is chance alone, so the two agree
    # within the spread of chance (a few times its size at this sample).
    rng = np.random.default_rng(1)
    counts_AE = pair_counts(rng.integers(0, 8, (2000, 1)), rng.integers(0, 4, 2000), 4, 8)
    chance = shuffled_nmi(counts_AE, draws=20)
    assert 0 < chance < 0.01
    assert normalised_mutual_information(counts_AE) < 4 * chance


def test_one_domain_has_no_information_to_share():
    assert normalised_mutual_information(np.array([[3, 1]])) == 0.0
    # shares that sum to 1 + 2e-16 give an entropy of +-2e-16, not 0: still no information, not a math error
    assert normalised_mutual_information(np.full((1, 30), 0.1)) == 0.0
    assert normalised_mutual_information(np.array([[3.0, 7.0, 1e-3, 5.0]]) * 0.1) == 0.0


@pytest.mark.parametrize("n_experts, expected", [(10, 5 / 9), (12, 8 / 9)])
def test_top_ten_percent_share(n_experts, expected):
    # ceil(0.1 * 10) = 1 expert holds 5 of 9 pairs; ceil(0.1 * 12) = 2 experts hold 5 + 3.
    counts_DE = np.zeros((2, n_experts), dtype=np.int64)
    counts_DE[0, :3] = [1, 5, 3]
    assert top_expert_share(counts_DE) == pytest.approx([expected, 0.0])


def test_dropped_pairs_are_ignored():
    with_drops = np.array([[0, -1], [0, -1], [-1, 1], [1, -1]], dtype=np.int16)
    assert np.array_equal(domain_expert_share(with_drops, DOMAINS_T, 2, 2), np.eye(2))


TOKEN_IDS_T = np.array([5, 5, 5, 7], dtype=np.int32)
VOCAB_EXPERTS_TK = np.array([[0, 1], [2, 1], [0, 3], [3, 1]], dtype=np.int16)


def test_vocabulary_specialisation_is_olmoes_share_of_occurrences_at_the_top_expert():
    # Token 5 occurs 3 times, twice at expert 0 (and at 1): 2/3; token 7 occurs once: 1. Weighted (2 + 1) / 4.
    counts_VE = pair_counts(VOCAB_EXPERTS_TK, TOKEN_IDS_T, 8, 4)
    result = vocabulary_specialisation(counts_VE, token_occurrences(TOKEN_IDS_T, 8))
    assert result["weighted_mean"] == pytest.approx(0.75)
    assert result["mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["histogram"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]


def test_over_represented_tokens_compare_the_experts_share_with_the_corpus_share():
    # Expert 0 holds token 0 twice of 2 pairs (corpus share 3/6): ratio 2. Expert 1: token 1 holds 2 of 4 pairs
    # (corpus 2/6): 1.5; tokens 0 and 2 have 1 pair there, under min_count=2.
    token_ids_T = np.array([0, 0, 0, 1, 1, 2])
    experts_TK = np.array([[0], [0], [1], [1], [1], [1]])
    counts_VE = pair_counts(experts_TK, token_ids_T, 3, 2)
    found = over_represented_tokens(counts_VE, token_occurrences(token_ids_T, 3), min_count=2)
    assert found == [[(0, pytest.approx(2.0), 2)], [(1, pytest.approx(1.5), 2)]]
