"""Every statistic a routing trace gives, per MoE layer, as JSON-able numbers: load balance, specialisation by
domain and by token, what each expert fires on, and co-activation. Each array is read in chunks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from dsmoe.analysis.chunks import pair_counts
from dsmoe.analysis.coactivation import coactivation_counts, coactivation_ratio, distinct_combinations
from dsmoe.analysis.load_balance import batch_max_vio, load_statistics, router_entropy_summary
from dsmoe.analysis.specialisation import (normalised_mutual_information, over_represented_tokens, shares,
                                           shuffled_nmi, token_occurrences, top_expert_share,
                                           vocabulary_specialisation)
from dsmoe.analysis.top_tokens import highest_weight_positions, in_context
from dsmoe.analysis.trace import Trace

TOP_TOKENS = 8  # per expert: highest-weight positions shown, and over-represented tokens listed


def trace_numbers(trace: Trace, decode: Callable[[list[int]], str], vocab_size: int,
                  tokens_per_batch: int) -> dict[str, dict]:
    """{layer: numbers} for every MoE layer of the trace (see layer_numbers); `tokens_per_batch` is the run's
    training batch in tokens, the batch of MaxVio_batch."""
    occurrences_V = token_occurrences(trace.token_ids, vocab_size)
    return {str(layer): layer_numbers(trace, layer, decode, occurrences_V, tokens_per_batch)
            for layer in tqdm(trace.moe_layers, desc="statistics", unit="layer", dynamic_ncols=True)}


def layer_numbers(trace: Trace, layer: int, decode: Callable[[list[int]], str], occurrences_V: np.ndarray,
                  tokens_per_batch: int) -> dict:
    experts_TK, n_experts, domains = trace.experts(layer), trace.n_experts, trace.domain_names
    counts_AE = pair_counts(experts_TK, trace.domains, len(domains), n_experts)
    load_E = counts_AE.sum(axis=0)
    counts_VE = pair_counts(experts_TK, trace.token_ids, len(occurrences_V), n_experts)
    coactivation_EE = coactivation_counts(experts_TK, n_experts)
    vocabulary = vocabulary_specialisation(counts_VE, occurrences_V)
    return {
        "load": {"tokens_per_expert": load_E.tolist(), **load_statistics(load_E),
                 "batch_max_vio": batch_max_vio(experts_TK, n_experts, tokens_per_batch),
                 "router_entropy": router_entropy_summary(trace.entropy(layer)) if trace.has_entropy else None},
        "domains": {"names": domains, "share": shares(counts_AE, counts_AE.sum(axis=1, keepdims=True)).tolist(),
                    "nmi": normalised_mutual_information(counts_AE), "nmi_shuffled": shuffled_nmi(counts_AE),
                    "top10_share": dict(zip(domains, top_expert_share(counts_AE).tolist()))},
        "vocabulary": {key: value.tolist() if isinstance(value, np.ndarray) else value
                       for key, value in vocabulary.items()},
        "experts": expert_profiles(trace, layer, decode, counts_VE, occurrences_V, load_E),
        "coactivation": {"ratio": coactivation_ratio(coactivation_EE).tolist(),
                         **distinct_combinations(experts_TK, n_experts)},
    }


def expert_profiles(trace: Trace, layer: int, decode: Callable[[list[int]], str], counts_VE: np.ndarray,
                    occurrences_V: np.ndarray, load_E: np.ndarray) -> list[dict]:
    """Per expert: its load, the highest-weight tokens in context and the most over-represented tokens."""
    positions = highest_weight_positions(trace.experts(layer), trace.weights(layer), trace.n_experts, TOP_TOKENS)
    over = over_represented_tokens(counts_VE, occurrences_V, top_n=TOP_TOKENS)
    token_ids_T, domains_T, names = trace.token_ids, trace.domains, trace.domain_names
    return [{"expert": expert, "load": int(load_E[expert]),
             "top_weight": [{"weight": weight, "domain": names[int(domains_T[position])],
                             **in_context(token_ids_T, position, trace.seq_len, decode)}
                            for position, weight in positions[expert]],
             "over_represented": [{"token": decode([token]), "ratio": ratio, "pairs": pairs}
                                  for token, ratio, pairs in over[expert]]}
            for expert in range(trace.n_experts)]
