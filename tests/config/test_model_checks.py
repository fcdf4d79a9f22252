"""Validation at construction: every bad value raises ValueError naming the field and its value."""

import re

import pytest

from dsmoe import ROUTERS, ModelConfig

INVALID = {
    "top_k_exceeds_experts": (dict(n_routed_experts=8, n_activated_experts=9),
                              "n_activated_experts=9 exceeds n_routed_experts=8"),
    "top_k_zero": (dict(n_activated_experts=0), "n_activated_experts=0 must be an integer >= 1"),
    "hidden_not_divisible_by_heads": (dict(hidden_size=250, n_heads=4),
                                      "hidden_size=250 is not divisible by n_heads=4"),
    "kv_heads_not_dividing_heads": (dict(n_heads=4, n_kv_heads=3), "n_kv_heads=3 does not divide n_heads=4"),
    "odd_head_dim": (dict(head_dim=63), "head_dim=63 must be even"),
    "experts_not_divisible_by_groups": (dict(n_routed_experts=16, n_group=3),
                                        "n_routed_experts=16 is not divisible by n_group=3"),
    "topk_group_exceeds_groups": (dict(n_group=2, topk_group=3), "topk_group=3 exceeds n_group=2"),
    "top_k_exceeds_reachable_experts": (dict(n_routed_experts=16, n_group=4, topk_group=1, n_activated_experts=5),
                                        "n_activated_experts=5 exceeds the 4 experts"),
    "sigmoid_groups_of_one": (dict(router="sigmoid_topk", n_routed_experts=4, n_group=4, topk_group=4),
                              "n_group=4 leaves < 2 experts per group"),
    "top2_sum_groups_of_one": (dict(n_routed_experts=4, n_activated_experts=2, n_group=4, topk_group=4,
                                    group_score="top2_sum"), "n_group=4 leaves < 2 experts per group"),
    "group_score_without_groups": (dict(group_score="max"), "group_score='max' has no effect unless n_group > 1"),
    "device_dropping_other_router": (dict(router="expert_choice", device_capacity_factor=1.0),
                                     "device_capacity_factor=1.0 needs a router with device-level token dropping "
                                     "(softmax_topk, sigmoid_topk, sqrtsoftplus_topk), not 'expert_choice'"),
    "device_capacity_factor_zero": (dict(device_capacity_factor=0.0),
                                    "device_capacity_factor=0.0 must be a number > 0 (or unset)"),
    "capacity_factor_zero": (dict(capacity_factor=0.0), "capacity_factor=0.0 must be a number > 0"),
    "capacity_factor_negative": (dict(capacity_factor=-1.5), "capacity_factor=-1.5 must be a number > 0"),
    "moe_layer_index_too_large": (dict(n_layers=4, moe_layer_indices=[0, 4]),
                                  "moe_layer_indices=[0, 4] has out-of-range entries [4]"),
    "moe_layer_index_negative": (dict(n_layers=4, moe_layer_indices=[-1, 2]),
                                 "moe_layer_indices=[-1, 2] has out-of-range entries [-1]"),
    "moe_layer_index_duplicate": (dict(n_layers=4, moe_layer_indices=[1, 1]),
                                  "moe_layer_indices=[1, 1] has duplicate entries"),
    "moe_layer_indices_without_experts": (dict(n_routed_experts=0, moe_layer_indices=[1]),
                                          "moe_layer_indices=[1] needs n_routed_experts > 0"),
    "unknown_expert_kernel": (dict(expert_kernel="cuda"), "expert_kernel='cuda' must be one of auto, grouped_mm, loop"),
    "switch_top_2": (dict(router="switch", n_activated_experts=2),
                     "n_activated_experts=2 must be 1 for router='switch'"),
    "gshard_top_1": (dict(router="gshard", n_activated_experts=1),
                     "n_activated_experts=1 must be 2 for router='gshard'"),
    "gshard_top_4": (dict(router="gshard", n_activated_experts=4),
                     "n_activated_experts=4 must be 2 for router='gshard'"),
    "devices_not_dividing_experts": (dict(n_routed_experts=16, n_devices=3),
                                     "n_devices=3 does not divide n_routed_experts=16"),
    "dense_layers_exceed_layers": (dict(n_layers=4, first_k_dense_replace=5),
                                   "first_k_dense_replace=5 exceeds n_layers=4"),
    "hash_layers_exceed_moe_layers": (dict(n_layers=4, first_k_dense_replace=2, n_hash_layers=3),
                                      "n_hash_layers=3 exceeds the 2 MoE layers (moe_layers=[2, 3])"),
    "hash_layers_without_gate_scores": (dict(router="switch", n_activated_experts=1, n_hash_layers=1),
                                        "n_hash_layers=1 > 0 needs a router whose gate scores the experts "
                                        "(softmax_topk, sigmoid_topk, sqrtsoftplus_topk) to weight them, not 'switch'"),
    "hash_layers_negative": (dict(n_hash_layers=-1), "n_hash_layers=-1 must be an integer >= 0"),
    "swiglu_limit_zero": (dict(swiglu_limit=0.0), "swiglu_limit=0.0 must be a number > 0 (or unset)"),
    "sinkhorn_no_iterations": (dict(router="sinkhorn", sinkhorn_max_iterations=0),
                               "sinkhorn_max_iterations=0 must be an integer >= 1"),
    "sinkhorn_zero_tol": (dict(router="sinkhorn", sinkhorn_tol=0.0), "sinkhorn_tol=0.0 must be a number > 0"),
    "sinkhorn_tol_other_router": (dict(sinkhorn_tol=0.001), "sinkhorn_tol=0.001 has no effect unless the router "
                                  "balances by Sinkhorn (sinkhorn), not 'softmax_topk'"),
    "sinkhorn_iterations_other_router": (dict(router="noisy_topk", sinkhorn_max_iterations=10),
                                         "sinkhorn_max_iterations=10 has no effect unless the router balances by "
                                         "Sinkhorn (sinkhorn), not 'noisy_topk'"),
    "soft_moe_normalise_other_router": (dict(soft_moe_normalise=True), "soft_moe_normalise=True needs a slot-based "
                                        "router (soft_moe), not 'softmax_topk'"),
}


@pytest.mark.parametrize("changes, message", INVALID.values(), ids=INVALID.keys())
def test_invalid_value_raises_naming_field_and_value(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelConfig(**changes)


def test_unknown_router_raises_listing_the_known_routers():
    with pytest.raises(ValueError, match=re.escape("router='topk' must be one of")) as info:
        ModelConfig(router="topk")
    assert all(name in str(info.value) for name in ROUTERS)


def test_a_router_registered_later_is_a_valid_choice():
    ROUTERS.register("custom", "dsmoe.routers.hash_router:HashRouter")
    try:
        assert ModelConfig(router="custom").router == "custom"
    finally:
        ROUTERS.unregister("custom")


@pytest.mark.parametrize("router, top_k", [("noisy_topk", 2), ("switch", 1), ("gshard", 2), ("hash", 2),
                                           ("expert_choice", 2), ("soft_moe", 2)])
def test_expert_groups_need_a_softmax_sigmoid_or_sqrtsoftplus_router(router, top_k):
    with pytest.raises(ValueError, match=re.escape(f"n_group=2 > 1 needs a group-limited router (softmax_topk, "
                                                   f"sigmoid_topk, sqrtsoftplus_topk), not {router!r}")):
        ModelConfig(router=router, n_activated_experts=top_k, n_group=2, topk_group=1)


@pytest.mark.parametrize("router", ["softmax_topk", "sigmoid_topk", "sqrtsoftplus_topk"])
def test_expert_groups_are_accepted_with_softmax_sigmoid_and_sqrtsoftplus_routers(router):
    assert ModelConfig(router=router, n_routed_experts=16, n_group=4, topk_group=2).n_group == 4


def test_explicit_head_dim_allows_hidden_size_not_divisible_by_heads():
    assert ModelConfig(hidden_size=250, n_heads=4, head_dim=64).head_dim == 64


def test_non_integer_moe_layer_index_raises_value_error():
    with pytest.raises(ValueError, match=re.escape("moe_layer_indices=[1, '2'] must be a list of integers")):
        ModelConfig(n_layers=4, moe_layer_indices=[1, "2"])


def test_defaults_are_valid():
    assert ModelConfig().moe_layers == [0, 1, 2, 3]
