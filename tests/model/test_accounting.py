"""Parameter accounting: count_params matches instantiated models, derives activated counts, allocates nothing."""

import resource

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, count_params, presets

SMALL = dict(vocab_size=96, hidden_size=32, n_layers=3, n_heads=4, max_seq_len=16, intermediate_size=48,
             moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2)

CONFIGS = {
    "untied": {},
    "tied": dict(tie_word_embeddings=True),
    "gqa": dict(n_kv_heads=2),
    "explicit_head_dim": dict(head_dim=16),
    "hybrid": dict(moe_layer_indices=[1]),
    "dense_first": dict(first_k_dense_replace=2),
    "no_shared": dict(n_shared_experts=0),
    "all_dense": dict(n_routed_experts=0),
    "hash": dict(router="hash"),
    "noisy_topk": dict(router="noisy_topk"),
    "soft_moe": dict(router="soft_moe"),
}


@pytest.mark.parametrize("changes", CONFIGS.values(), ids=CONFIGS.keys())
def test_total_equals_the_instantiated_models_parameter_count(changes):
    cfg = ModelConfig(**{**SMALL, **changes})
    model = DeepSeekMoEForCausalLM(cfg)
    assert count_params(cfg).total == sum(p.numel() for p in model.parameters())


def test_activated_excludes_the_unchosen_fraction_of_routed_experts():
    cfg = ModelConfig(**SMALL, first_k_dense_replace=1)
    total = sum(p.numel() for p in DeepSeekMoEForCausalLM(cfg).parameters())
    # 2 MoE layers x 8 experts x (gate, up, down) of 32 x 16; top-2 of 8 leaves 6/8 idle per token
    routed_total = 2 * 8 * 3 * 32 * 16
    assert count_params(cfg).activated == total - routed_total * 6 // 8


@pytest.mark.parametrize("changes", CONFIGS.values(), ids=CONFIGS.keys())
def test_components_sum_to_the_totals(changes):
    count = count_params(ModelConfig(**{**SMALL, **changes}))
    assert sum(t for t, _ in count.by_component.values()) == count.total
    assert sum(a for _, a in count.by_component.values()) == count.activated


def test_hash_router_has_no_gate_parameters():
    assert count_params(ModelConfig(**SMALL, router="hash")).by_component["router"] == (0, 0)


def test_tied_embeddings_are_counted_once():
    untied = count_params(ModelConfig(**SMALL)).by_component["embeddings"][0]
    tied = count_params(ModelConfig(**SMALL, tie_word_embeddings=True)).by_component["embeddings"][0]
    assert (untied, tied) == (2 * 96 * 32, 96 * 32)


def test_count_params_allocates_no_weights():
    # paper-145b holds 578 GB of fp32 weights; counting it must not grow peak memory by even 1 GB
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = count_params(presets.get("paper-145b"))
    peak_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb
    assert count.total > 1e11 and peak_growth_kb < 1024 * 1024


@pytest.mark.parametrize("tied", [False, True])
def test_main_model_leaves_out_the_mtp_modules_and_the_input_embedding_lookup(tied):
    count = count_params(ModelConfig(**SMALL, n_mtp_modules=1, tie_word_embeddings=tied))
    mtp_total, mtp_activated = count.by_component["mtp"]
    lookup_only = 0 if tied else 96 * 32  # a tied embedding is the output head, a matmul every token runs
    assert count.main_model == (count.total - mtp_total, count.activated - mtp_activated - lookup_only)
