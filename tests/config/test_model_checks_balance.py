"""Validation of the balance-loss fields: each bad combination raises naming the field and its value."""

import re

import pytest

from dsmoe import ModelConfig

INVALID = {
    "unknown_scope": (dict(balance_scope="batch"),
                      "balance_scope='batch' must be one of micro_batch, sequence, global_batch"),
    "comm_without_groups": (dict(comm_balance_alpha=0.02, n_devices=4),
                            "comm_balance_alpha=0.02 needs n_group = n_devices > 1"),
    "comm_groups_not_devices": (dict(comm_balance_alpha=0.02, n_group=4, topk_group=2, n_devices=2),
                                "not n_group=4, n_devices=2"),
    "unknown_noisy_balance": (dict(router="noisy_topk", noisy_topk_balance="cv"),
                              "noisy_topk_balance='cv' must be one of importance_load, expert_level"),
    "importance_over_the_global_batch": (dict(router="noisy_topk", balance_scope="global_batch"),
                                         "balance_scope='global_batch' must be 'micro_batch' with noisy_topk_balance"),
    "load_estimator_needs_an_other_expert": (dict(router="noisy_topk", n_routed_experts=4, n_activated_experts=4),
                                             "n_activated_experts=4 must be < n_routed_experts=4"),
    "negative_load_weight": (dict(load_loss_weight=-0.1), "load_loss_weight=-0.1 must be a number >= 0"),
    "unknown_seq_count": (dict(balance_scope="sequence", seq_balance_count="biased"),
                          "seq_balance_count='biased' must be one of chosen, unbiased_topk"),
    "seq_count_without_sequence_scope": (dict(seq_balance_count="unbiased_topk"),
                                         "seq_balance_count='unbiased_topk' has no effect unless "
                                         "balance_scope='sequence'"),
    "sinkhorn_sequence_scope": (dict(router="sinkhorn", balance_scope="sequence"),
                                "balance_scope='sequence' must be 'micro_batch' with router='sinkhorn'"),
}


@pytest.mark.parametrize("changes, message", INVALID.values(), ids=INVALID.keys())
def test_invalid_balance_fields_raise_naming_field_and_value(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelConfig(**changes)


def test_valid_balance_combinations():
    assert ModelConfig(comm_balance_alpha=0.02, n_group=4, topk_group=2, n_devices=4).comm_balance_alpha == 0.02
    assert ModelConfig(router="noisy_topk", noisy_topk_balance="expert_level", balance_scope="global_batch")
    assert ModelConfig(router="noisy_topk", n_routed_experts=0).n_activated_experts == 4
    assert ModelConfig(balance_scope="sequence", seq_balance_count="unbiased_topk").seq_balance_count == "unbiased_topk"
    assert ModelConfig(router="sinkhorn", sinkhorn_max_iterations=10, sinkhorn_tol=1e-3).sinkhorn_tol == 1e-3
    assert ModelConfig(router="soft_moe", soft_moe_normalise=True).soft_moe_normalise
