"""Residual dropout (ModelConfig.dropout): on each block's attention and FFN outputs in training, never in eval."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig

CONFIG = dict(vocab_size=64, hidden_size=32, n_layers=2, n_heads=4, max_seq_len=16, intermediate_size=48,
              moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2,
              first_k_dense_replace=1)
IDS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))


def twins(dropout: float) -> tuple[DeepSeekMoEForCausalLM, DeepSeekMoEForCausalLM]:
    """A model with `dropout` and one without, with the same weights."""
    with_dropout = DeepSeekMoEForCausalLM(ModelConfig(**CONFIG, dropout=dropout))
    without = DeepSeekMoEForCausalLM(ModelConfig(**CONFIG))
    without.load_state_dict(with_dropout.state_dict())
    return with_dropout, without


def test_evaluation_never_drops():
    with_dropout, without = twins(0.5)
    assert torch.equal(with_dropout.eval()(IDS).logits, without.eval()(IDS).logits)


def test_training_drops_each_branch_output_and_rescales_the_kept_values():
    with_dropout, without = twins(0.5)
    block = with_dropout.layers[0]
    branch = torch.ones(4, 1000)
    dropped = block.train().drop(branch)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert 0.4 < (dropped == 0).float().mean() < 0.6
    torch.manual_seed(0)
    assert not torch.allclose(with_dropout.train()(IDS).logits, without.train()(IDS).logits)


def test_no_dropout_is_the_identity_in_training():
    model = DeepSeekMoEForCausalLM(ModelConfig(**CONFIG)).train()
    branch = torch.randn(3, 5)
    assert model.layers[1].drop(branch) is branch


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.1"])
def test_a_dropout_outside_zero_to_one_is_refused_naming_the_field(value):
    with pytest.raises(ValueError, match=r"dropout=.* must be a number in \[0, 1\)"):
        ModelConfig(**CONFIG, dropout=value)
