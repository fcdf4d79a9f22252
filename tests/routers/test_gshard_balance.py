"""GShard's balance loss counts each token's first choice only (Lepikhin et al. 2020, Algorithm 1)."""

import math

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.routers import ROUTERS
from dsmoe.routers.balance import choice_counts, expert_balance_loss

ALPHA = 0.1
LOGITS_TE = torch.tensor([[3.0, 1.0, 0.0, 0.0], [3.0, 0.0, 1.0, 0.0], [3.0, 0.0, 0.0, 1.0], [3.0, 1.0, 0.0, 0.0]])


def gshard_routing():
    """Every token's first choice is expert 0, its second 1, 2, 3, 1: the gate is the identity, x the logits."""
    config = ModelConfig(vocab_size=16, hidden_size=4, n_layers=1, n_heads=1, max_seq_len=4, n_routed_experts=4,
                         n_activated_experts=2, router="gshard", aux_loss_alpha=ALPHA, capacity_factor=2.0)
    router = ROUTERS["gshard"](config)
    with torch.no_grad():
        router.weight.copy_(torch.eye(4))
    return router(LOGITS_TE, torch.zeros(4, dtype=torch.long), 1)


def test_gshard_loss_counts_first_choices_by_hand():
    """f = E/T * (4, 0, 0, 0) = (4, 0, 0, 0) and P_0 = e^3 / (e^3 + e + 2) for every row: L = 4 alpha P_0."""
    p_0 = math.exp(3) / (math.exp(3) + math.exp(1) + 2)
    assert gshard_routing().aux_losses["expert_balance"].item() == pytest.approx(4 * ALPHA * p_0, rel=1e-6)


def test_gshard_loss_is_alpha_times_fairseq_l_aux():
    """fairseq's top2gating: me = mean gates, ce = mean top-1 one-hot, l_aux = mean(me * ce) * E * E."""
    gates_TE = LOGITS_TE.softmax(dim=-1)
    mask1_TE = torch.nn.functional.one_hot(gates_TE.argmax(dim=1), num_classes=4).float()
    l_aux = (gates_TE.mean(0) * mask1_TE.mean(0)).mean() * 4 * 4
    torch.testing.assert_close(gshard_routing().aux_losses["expert_balance"], ALPHA * l_aux)


def test_first_choice_counting_differs_from_counting_both_under_skew():
    both = expert_balance_loss(LOGITS_TE.softmax(dim=-1), choice_counts(LOGITS_TE.topk(2).indices, 4), ALPHA)
    assert not torch.allclose(gshard_routing().aux_losses["expert_balance"], both, rtol=1e-2)
