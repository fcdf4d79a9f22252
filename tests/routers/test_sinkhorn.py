"""Sinkhorn-balanced routing (BASE layers as Megatron-Core runs them): the plan against hand-computed ones and a plain
loop of Megatron-Core's iteration, balance in training, plain top-k at inference, and no expert-level loss."""

import math

import pytest
import torch

from dsmoe.routers.sinkhorn import sinkhorn
from tests.routers.test_routers import N_TOKENS, batch, build_router, route

SKEWED = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])  # exp: [[1, 2], [1, 1]]


def test_one_iteration_is_the_hand_computed_scaling():
    """d1 = 1: d0 = 1 / (2 * row sums) = (1/6, 1/4); the columns of d0 * K sum to (5/12, 7/12), so d1 = (6/5, 6/7)
    and the plan is [[1/5, 2/7], [3/10, 3/14]], each column summing to 1/2."""
    plan = sinkhorn(SKEWED, max_iterations=1, tol=1e-4)
    torch.testing.assert_close(plan, torch.tensor([[1 / 5, 2 / 7], [3 / 10, 3 / 14]]))


def test_the_fixed_point_is_the_hand_computed_doubly_stochastic_plan():
    """Rows and columns summing to 1/2 leave P = [[x, 1/2 - x], [1/2 - x, x]]; scaling keeps the cross ratio
    P00 P11 / (P01 P10) = K00 K11 / (K01 K10) = 1/2, so x / (1/2 - x) = 1/sqrt(2): x = (sqrt(2) - 1) / 2."""
    x = (math.sqrt(2) - 1) / 2
    plan = sinkhorn(SKEWED, max_iterations=1000, tol=1e-9)
    torch.testing.assert_close(plan, torch.tensor([[x, 0.5 - x], [0.5 - x, x]]), atol=1e-6, rtol=0)


def plain_megatron_sinkhorn(logits: list[list[float]], tol: float) -> list[list[float]]:
    """Megatron-Core's moe_utils.sinkhorn written as loops over Python floats (exp of the raw logits)."""
    cost = [[math.exp(v) for v in row] for row in logits]
    n_rows, n_cols, eps = len(cost), len(cost[0]), 1e-8
    d0, d1, error = [1.0] * n_rows, [1.0] * n_cols, 1e9
    while error > tol:
        d0 = [1 / (n_rows * (sum(d1[j] * cost[i][j] for j in range(n_cols)) + eps)) for i in range(n_rows)]
        new_d1 = [1 / (n_cols * (sum(d0[i] * cost[i][j] for i in range(n_rows)) + eps)) for j in range(n_cols)]
        error = sum(abs(a - b) for a, b in zip(new_d1, d1)) / n_cols
        d1 = new_d1
    return [[d0[i] * cost[i][j] * d1[j] for j in range(n_cols)] for i in range(n_rows)]


def test_the_plan_matches_a_plain_loop_of_megatron_cores_iteration():
    logits_TE = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    expected = plain_megatron_sinkhorn(logits_TE.tolist(), tol=1e-4)
    torch.testing.assert_close(sinkhorn(logits_TE, max_iterations=100, tol=1e-4), torch.tensor(expected))


def test_large_logits_do_not_overflow():
    """exp(100) overflows fp32; the plan is that of the logits less their row maxima, which it equals."""
    logits_TE = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sinkhorn(logits_TE + 100, 100, 1e-4), sinkhorn(logits_TE, 100, 1e-4))


def skewed_router(top_k: int):
    """8 experts whose logits all favour the low-numbered ones: plain top-k sends nearly every token to them."""
    router = build_router("sinkhorn", n_activated_experts=top_k, aux_loss_alpha=0.0)
    with torch.no_grad():
        router.weight.mul_(0.2)
        router.weight[:, 0] += torch.linspace(3.0, 0.0, 8)  # batch()'s x[:, 0] is set to 1 below
    x_TD, ids_T = batch()
    x_TD[:, 0] = 1.0
    return router, x_TD, ids_T


@pytest.mark.parametrize("top_k", [1, 2])
def test_training_assignment_is_more_balanced_than_plain_top_k(top_k):
    router, x_TD, ids_T = skewed_router(top_k)
    plain = torch.bincount(route(router.eval(), x_TD, ids_T).expert_index_S, minlength=8)
    balanced = torch.bincount(route(router.train(), x_TD, ids_T).expert_index_S, minlength=8)
    mean_load = N_TOKENS * top_k / 8
    assert plain.max() >= 3 * mean_load and balanced.max() <= 2 * mean_load
    assert (balanced > 0).sum() > (plain > 0).sum()


@pytest.mark.parametrize("top_k", [1, 2])
def test_inference_is_plain_top_k_and_weights_are_the_chosen_scores(top_k):
    """Eval: the top-k of the scores (sigmoid for top-1, softmax for top-k > 1); in both modes every weight is the
    score of the expert it goes with, the training choice notwithstanding."""
    router, x_TD, ids_T = skewed_router(top_k)
    logits_TE = x_TD @ router.weight.detach().t()
    scores_TE = logits_TE.sigmoid() if top_k == 1 else logits_TE.softmax(-1)
    for training in (False, True):
        routing = route(router.train(training), x_TD, ids_T)
        torch.testing.assert_close(routing.weight_S, scores_TE[routing.token_index_S, routing.expert_index_S])
    chosen_TK = route(router.eval(), x_TD, ids_T).expert_index_S.reshape(-1, top_k)
    assert torch.equal(chosen_TK, scores_TE.topk(top_k, dim=-1).indices)


def test_training_choice_is_the_top_k_of_the_plan():
    router, x_TD, ids_T = skewed_router(2)
    plan_TE = sinkhorn(x_TD @ router.weight.detach().t(), 100, 1e-4)
    chosen_TK = route(router.train(), x_TD, ids_T).expert_index_S.reshape(-1, 2)
    assert torch.equal(chosen_TK, plan_TE.topk(2, dim=-1).indices)


def test_no_expert_level_loss_but_the_z_loss_applies():
    router = build_router("sinkhorn", aux_loss_alpha=0.01, z_loss_coef=1e-3).train()
    assert set(route(router).aux_losses) == {"z_loss"}

