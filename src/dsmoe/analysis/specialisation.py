"""Domain and vocabulary specialisation of experts, from a layer's routing trace arrays.

Every statistic counts token-expert pairs: a token routed to K experts gives K pairs (its domain or token id,
the expert), and pairs dropped by capacity (expert -1) are ignored. Inputs may be np.memmap; they are read in
chunks of chunk_tokens tokens. Results are numpy arrays or floats (JSON-able through .tolist())."""

from __future__ import annotations

import math

import numpy as np

from dsmoe.analysis.chunks import CHUNK_TOKENS, pair_counts, token_chunks


def shares(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole elementwise, 0 where whole is 0 (a domain or token without pairs)."""
    return np.divide(part, whole, out=np.zeros(np.broadcast_shapes(part.shape, whole.shape)), where=whole > 0)


def domain_expert_share(experts_TK: np.ndarray, domains_T: np.ndarray, n_domains: int, n_experts: int,
                        chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[n_domains, n_experts]: of each domain's kept pairs, the share sent to each expert (OLMoE's domain
    specialisation, Muennighoff et al. 2024 Sec. 5, with every top-k choice counted)."""
    counts_AE = pair_counts(experts_TK, domains_T, n_domains, n_experts, chunk_tokens)
    return shares(counts_AE, counts_AE.sum(axis=1, keepdims=True))


ENTROPY_FLOOR = 1e-12  # nats: below it a distribution is one outcome


def entropy(probabilities: np.ndarray) -> float:
    """Shannon entropy in nats, 0 log 0 = 0."""
    p = probabilities[probabilities > 0]
    return float(-(p * np.log(p)).sum())


def normalised_mutual_information(counts_AE: np.ndarray) -> float:
    """NMI(D; E) = I(D; E) / sqrt(H(D) H(E)) of the joint distribution of (domain, chosen expert) over pairs,
    the geometric-mean normalisation of Strehl & Ghosh 2002 (JMLR 3, eq. 2): 1 when each domain uses its own
    disjoint experts, 0 when the expert is independent of the domain. 0 when H(D) or H(E) is 0 (one domain or
    one expert: nothing to tell apart)."""
    joint = counts_AE / counts_AE.sum()
    h_domain, h_expert = entropy(joint.sum(axis=1)), entropy(joint.sum(axis=0))
    if h_domain < ENTROPY_FLOOR or h_expert < ENTROPY_FLOOR:  # a sum that rounds above 1 gives -2e-16, not 0
        return 0.0
    mutual_information = h_domain + h_expert - entropy(joint.ravel())  # I = H(D) + H(E) - H(D, E)
    return max(mutual_information, 0.0) / math.sqrt(h_domain * h_expert)


def shuffled_nmi(counts_AE: np.ndarray, draws: int = 5, seed: int = 0) -> float:
    """The NMI chance alone gives this table: the mean NMI of `draws` tables with the same domain and expert totals
    whose pairs are dealt to the domains at random (the pairs' domain labels shuffled). A finite sample scores
    above 0 without any specialisation; this is the level an NMI must clear to show some."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(draws):
        remaining_E = counts_AE.sum(axis=0).astype(np.int64)
        dealt_AE = np.zeros_like(counts_AE, dtype=np.int64)
        for domain, n_pairs in enumerate(counts_AE.sum(axis=1)):
            dealt_AE[domain] = rng.multivariate_hypergeometric(remaining_E, int(n_pairs))
            remaining_E -= dealt_AE[domain]
        found.append(normalised_mutual_information(dealt_AE))
    return float(np.mean(found))


def domain_expert_nmi(experts_TK: np.ndarray, domains_T: np.ndarray, n_domains: int, n_experts: int,
                      chunk_tokens: int = CHUNK_TOKENS) -> float:
    """NMI between a pair's domain and its expert, over a layer's kept pairs."""
    return normalised_mutual_information(pair_counts(experts_TK, domains_T, n_domains, n_experts, chunk_tokens))


def top_expert_share(counts_AE: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """[n_domains]: share of each domain's pairs held by its ceil(fraction * E) most-used experts (0 for a
    domain without pairs)."""
    n_top = math.ceil(fraction * counts_AE.shape[1])
    top = -np.sort(-counts_AE, axis=1)[:, :n_top]
    return shares(top.sum(axis=1), counts_AE.sum(axis=1))


def token_occurrences(token_ids_T: np.ndarray, vocab_size: int, chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
    """[vocab_size] int64: how often each token id occurs in the trace."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for part in token_chunks(len(token_ids_T), chunk_tokens):
        counts += np.bincount(np.asarray(token_ids_T[part], dtype=np.int64), minlength=vocab_size)
    return counts


def vocabulary_specialisation(counts_VE: np.ndarray, occurrences_V: np.ndarray, n_bins: int = 10) -> dict:
    """OLMoE's vocabulary specialisation (Muennighoff et al. 2024, Sec. 5): for token id x and expert i,
    N_{x,i} / N_x, the share of x's occurrences routed to i among its top-k; a token's specialisation is that
    of its most-used expert. Returns the mean over occurring token ids weighted by frequency, the unweighted
    mean, and a histogram of token ids over n_bins equal bins of [0, 1].

    counts_VE: pair_counts(experts_TK, token_ids_T, vocab_size, n_experts); occurrences_V: token_occurrences."""
    seen = occurrences_V > 0
    specialisation = counts_VE.max(axis=1)[seen] / occurrences_V[seen]
    histogram, bin_edges = np.histogram(specialisation, bins=n_bins, range=(0.0, 1.0))
    return {"weighted_mean": float(counts_VE.max(axis=1)[seen].sum() / occurrences_V.sum()),
            "mean": float(specialisation.mean()), "histogram": histogram, "bin_edges": bin_edges}


def over_represented_tokens(counts_VE: np.ndarray, occurrences_V: np.ndarray, min_count: int = 10,
                            top_n: int = 10) -> list[list[tuple[int, float, int]]]:
    """Per expert, up to top_n (token id, ratio, pairs) by ratio = (share of the token among the expert's
    pairs) / (share of the token among the corpus's tokens), over tokens with at least min_count pairs at
    that expert (rare tokens would otherwise top every list by chance); equal ratios list the token with more
    pairs first."""
    expert_share_VE = shares(counts_VE, counts_VE.sum(axis=0, keepdims=True))
    corpus_share_V1 = (occurrences_V / occurrences_V.sum())[:, None]
    ratio_VE = np.where(counts_VE >= min_count, shares(expert_share_VE, corpus_share_V1), 0.0)
    found = []
    for expert in range(counts_VE.shape[1]):
        order = np.lexsort((-counts_VE[:, expert], -ratio_VE[:, expert]))[:top_n]  # ties: the more frequent
        found.append([(int(v), float(ratio_VE[v, expert]), int(counts_VE[v, expert]))
                      for v in order if ratio_VE[v, expert] > 0])
    return found
