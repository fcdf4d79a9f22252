"""The dense counterpart of an MoE model: the same activated FFN parameters per token, every layer dense."""

import pytest

from dsmoe.config import ModelConfig
from dsmoe.model import count_params
from dsmoe.model.counterpart import activated_ffn_width, dense_counterpart

MOE = dict(vocab_size=256, hidden_size=64, n_layers=3, n_heads=4, intermediate_size=96, moe_intermediate_size=32,
           n_shared_experts=1, n_routed_experts=8, n_activated_experts=2, first_k_dense_replace=1, z_loss_coef=0.1)


def test_the_counterpart_activates_what_the_moe_activates_less_its_router():
    moe = ModelConfig(**MOE)
    dense = dense_counterpart(moe)
    assert dense.moe_layers == [] and dense.aux_loss_alpha == 0 and dense.z_loss_coef == 0
    moe_count, dense_count = count_params(moe), count_params(dense)
    router = moe_count.by_component["router"][1]
    assert router == 2 * 8 * 64  # two MoE layers, an 8 x 64 gate each
    assert dense_count.activated == moe_count.activated - router
    assert dense_count.total < moe_count.total


def test_the_activated_width_counts_the_shared_and_the_chosen_routed_experts():
    assert activated_ffn_width(ModelConfig(**MOE)) == 32 + 2 * 32
    assert activated_ffn_width(ModelConfig(**{**MOE, "n_shared_experts": 0, "intermediate_size": 64})) == 64


def test_a_dense_width_other_than_the_activated_width_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"FFN width of 96 .* but intermediate_size=128"):
        dense_counterpart(ModelConfig(**{**MOE, "intermediate_size": 128}))


def test_a_dense_model_has_no_counterpart():
    with pytest.raises(ValueError, match="no MoE layers"):
        dense_counterpart(ModelConfig(**{**MOE, "n_routed_experts": 0}))
