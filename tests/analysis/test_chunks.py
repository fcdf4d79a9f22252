"""Chunked statistics over np.memmap equal the statistics of the whole arrays in memory."""

import numpy as np

from dsmoe.analysis.chunks import pair_counts
from dsmoe.analysis.coactivation import coactivation_counts, distinct_combinations
from dsmoe.analysis.specialisation import token_occurrences


def test_chunked_memmap_equals_unchunked(tmp_path):
    rng = np.random.default_rng(1)
    n_tokens, n_experts = 1000, 8
    experts_TK = np.argsort(rng.random((n_tokens, n_experts)), axis=1)[:, :3].astype(np.int16)
    experts_TK[rng.random(experts_TK.shape) < 0.1] = -1
    domains_T = rng.integers(0, 3, n_tokens).astype(np.int16)
    np.save(tmp_path / "experts.npy", experts_TK)
    np.save(tmp_path / "domains.npy", domains_T)
    mapped_TK = np.load(tmp_path / "experts.npy", mmap_mode="r")
    mapped_T = np.load(tmp_path / "domains.npy", mmap_mode="r")
    assert np.array_equal(pair_counts(mapped_TK, mapped_T, 3, n_experts, chunk_tokens=7),
                          pair_counts(experts_TK, domains_T, 3, n_experts))
    assert np.array_equal(coactivation_counts(mapped_TK, n_experts, chunk_tokens=7),
                          coactivation_counts(experts_TK, n_experts))
    assert distinct_combinations(mapped_TK, n_experts, chunk_tokens=7) == distinct_combinations(experts_TK, n_experts)
    assert np.array_equal(token_occurrences(mapped_T, 3, chunk_tokens=7), token_occurrences(domains_T, 3))
