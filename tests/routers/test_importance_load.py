"""Noisy top-k's importance and load losses (Shazeer et al. 2017, Sec. 4, Appendix A) against hand values."""

import math

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.model.init import init_weights
from dsmoe.routers import ROUTERS
from dsmoe.routers.importance_load import cv_squared, importance, smooth_load


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def chosen_mask(noisy_TE: torch.Tensor, top_k: int) -> torch.Tensor:
    return torch.zeros_like(noisy_TE, dtype=torch.bool).scatter(1, noisy_TE.topk(top_k).indices, True)


def test_cv_squared_by_hand():
    """Uniform importance: CV = 0. All on one of E = 4 experts, (T, 0, 0, 0): Var = 3T^2/16, mean^2 = T^2/16: 3."""
    assert cv_squared(torch.full((4,), 2.5)).item() == 0.0
    assert cv_squared(torch.tensor([8.0, 0.0, 0.0, 0.0])).item() == pytest.approx(3.0, rel=1e-6)
    assert cv_squared(torch.tensor([1.0, 3.0])).item() == pytest.approx(0.25, rel=1e-6)  # Var 1, mean 2


def test_importance_sums_the_gates_over_the_batch():
    gates_TE = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4]])
    torch.testing.assert_close(importance(gates_TE), torch.tensor([0.7, 0.9, 0.4]))


def test_smooth_load_of_one_token_by_hand():
    """k = 1, H = (1.5, 0.2, -2) chooses expert 0; kth_excluding is 0.2 for expert 0 and 1.5 for the others:
    P = (Phi((1 - 0.2) / 1), Phi((0 - 1.5) / 2), Phi((-1 - 1.5) / 0.5)) (Eq. 9)."""
    clean_TE, noisy_TE = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[1.5, 0.2, -2.0]])
    noise_std_TE = torch.tensor([[1.0, 2.0, 0.5]])
    load_E = smooth_load(clean_TE, noisy_TE, noise_std_TE, chosen_mask(noisy_TE, 1), 1)
    torch.testing.assert_close(load_E, torch.tensor([phi(0.8), phi(-0.75), phi(-5.0)]))


def test_smooth_load_matches_a_plain_loop():
    """Load_i = sum_x Phi((clean_i - (k-th greatest of H without i)) / std_i), with loops and math.erf."""
    generator = torch.Generator().manual_seed(0)
    clean_TE = torch.randn(12, 6, generator=generator)
    noise_std_TE = torch.rand(12, 6, generator=generator) + 0.1
    noisy_TE = clean_TE + torch.randn(12, 6, generator=generator) * noise_std_TE
    top_k = 2
    expected = [0.0] * 6
    for clean, noisy, std in zip(clean_TE.tolist(), noisy_TE.tolist(), noise_std_TE.tolist()):
        for i in range(6):
            kth_excluding = sorted((h for j, h in enumerate(noisy) if j != i), reverse=True)[top_k - 1]
            expected[i] += phi((clean[i] - kth_excluding) / std[i])
    load_E = smooth_load(clean_TE, noisy_TE, noise_std_TE, chosen_mask(noisy_TE, top_k), top_k)
    torch.testing.assert_close(load_E, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def noisy_router(**changes):
    config = ModelConfig(vocab_size=16, hidden_size=8, n_layers=1, n_heads=2, max_seq_len=8, n_routed_experts=4,
                         n_activated_experts=2, router="noisy_topk", **changes)
    torch.manual_seed(0)
    router = ROUTERS["noisy_topk"](config)
    init_weights(router, std=0.5)
    return router


def test_noisy_topk_balances_with_importance_and_load_by_default_and_both_train_the_noise():
    router = noisy_router().train()
    aux = router(torch.randn(16, 8), torch.zeros(16, dtype=torch.long), 2).aux_losses
    assert set(aux) == {"importance", "load"}
    aux["load"].backward()
    assert router.noise_weight.grad.abs().sum() > 0


def test_noisy_topk_can_use_the_expert_level_loss_instead():
    router = noisy_router(noisy_topk_balance="expert_level").train()
    assert set(router(torch.randn(16, 8), torch.zeros(16, dtype=torch.long), 2).aux_losses) == {"expert_balance"}
