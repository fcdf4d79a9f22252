"""Disabled experts: no token chooses them, the others are chosen among, and nothing changes when none is."""

import pytest
import torch

from dsmoe.routers import ROUTERS
from dsmoe.routers.softmax_topk import group_scores
from tests.routers.test_routers import batch, build_router, route

GATED_TOKEN_CHOICE = [name for name in ROUTERS if name not in ("soft_moe", "expert_choice", "hash")]


@pytest.mark.parametrize("name", GATED_TOKEN_CHOICE)
def test_disabled_experts_are_never_chosen(name):
    router = build_router(name).eval()
    before = route(router).expert_index_S
    most_chosen = torch.bincount(before, minlength=8).topk(3).indices.tolist()
    router.disable_experts(most_chosen)
    assert not set(route(router).expert_index_S.tolist()) & set(most_chosen)


def test_a_large_bias_cannot_bring_a_disabled_expert_back():
    router = build_router("sigmoid_topk").eval()
    router.expert_bias[3] = 100.0
    assert (route(router).expert_index_S == 3).sum() == len(route(router).weight_S) // router.top_k
    router.disable_experts([3])
    assert 3 not in route(router).expert_index_S.tolist()


def test_group_limited_routing_chooses_among_the_rest():
    router = build_router("softmax_topk", n_group=4, topk_group=2).eval()
    router.disable_experts([0, 1])
    assert min(route(router).expert_index_S.tolist()) >= 2


def test_softmax_renormalises_over_the_remaining_experts():
    # DeepSeekMoE Sec. 4.5: top-K among the remaining; the softmax is over the remaining experts.
    router = build_router("softmax_topk").eval()
    x_TD, _ = batch()
    router.disable_experts([5])
    logits_TE = torch.nn.functional.linear(x_TD, router.weight)
    expected = torch.cat([logits_TE[:, :5], logits_TE[:, 6:]], 1).softmax(-1)
    assert torch.allclose(torch.cat([router.affinities(x_TD)[:, :5], router.affinities(x_TD)[:, 6:]], 1), expected,
                          atol=1e-6)
    assert (router.affinities(x_TD)[:, 5] == 0).all()


@pytest.mark.parametrize("name", GATED_TOKEN_CHOICE)
def test_enabling_again_is_bitwise_the_router_before(name):
    router = build_router(name).eval()
    before = route(router)
    router.disable_experts([1, 2])
    router.disable_experts([])
    after = route(router)
    assert torch.equal(before.expert_index_S, after.expert_index_S) and torch.equal(before.weight_S, after.weight_S)


def test_refusals_name_the_problem():
    router = build_router("softmax_topk")
    with pytest.raises(ValueError, match="fewer than n_activated_experts=2"):
        router.disable_experts(list(range(7)))
    with pytest.raises(ValueError, match=r"experts \[8\] do not exist"):
        router.disable_experts([8])
    with pytest.raises(ValueError, match="HashRouter cannot disable experts"):
        build_router("hash").disable_experts([0])
    with pytest.raises(ValueError, match="cannot disable experts"):
        build_router("expert_choice").disable_experts([0])


def test_affinities_are_distributions():
    x_TD, _ = batch()
    for name in ("softmax_topk", "sigmoid_topk"):
        probs_TE = build_router(name).affinities(x_TD)
        assert torch.allclose(probs_TE.sum(-1), torch.ones(len(x_TD))) and (probs_TE >= 0).all()


@pytest.mark.parametrize("name", GATED_TOKEN_CHOICE)
def test_nothing_disabled_is_bitwise_a_fresh_identical_router(name):
    router, fresh = build_router(name).eval(), build_router(name).eval()
    router.disable_experts([])
    assert router.disabled_E is None
    mine, theirs = route(router), route(fresh)
    assert torch.equal(mine.expert_index_S, theirs.expert_index_S) and torch.equal(mine.weight_S, theirs.weight_S)


def test_enable_all_experts_undoes_disabling():
    router = build_router("softmax_topk").eval()
    before = route(router)
    router.disable_experts([0, 4])
    router.enable_all_experts()
    assert router.disabled_E is None and torch.equal(route(router).weight_S, before.weight_S)


@pytest.mark.parametrize("name", ["softmax_topk", "sigmoid_topk"])
@pytest.mark.parametrize("disabled", [[0, 1], [0, 2, 4, 6], [1, 2, 5], [0, 1, 2, 4, 6]])
def test_group_limited_routing_never_chooses_a_disabled_expert(name, disabled):
    # Groups of two; a group with one expert left, or none, must not let its disabled ones in (group_scores).
    router = build_router(name, n_group=4, topk_group=2).eval()
    if name == "sigmoid_topk":
        router.expert_bias[disabled] = 100.0
    router.disable_experts(disabled)
    routing = route(router)
    assert not set(routing.expert_index_S.tolist()) & set(disabled)
    assert (routing.weight_S > 0).all()


def test_group_limited_refusal_counts_the_groups_a_token_is_left():
    router = build_router("softmax_topk", n_group=4, topk_group=1)
    with pytest.raises(ValueError, match="SoftmaxTopKRouter: disabling 1 .* leave a token 1 in its topk_group=1"):
        router.disable_experts([0])


@pytest.mark.parametrize("name", GATED_TOKEN_CHOICE)
def test_training_with_disabled_experts_has_finite_gradients(name):
    # Pruning fine-tunes with experts disabled: -inf logits must not turn into NaN gradients (importance_load.py).
    router = build_router(name).train()
    disabled = [0, 3, 4, 5, 6, 7]  # all but top_k (or one more): a token's k-th best other can be -inf too
    router.disable_experts(disabled)
    routing = route(router)
    (routing.weight_S.sum() + sum(routing.aux_losses.values())).backward()
    assert not set(routing.expert_index_S.tolist()) & set(disabled)
    assert all(torch.isfinite(p.grad).all() for p in router.parameters() if p.grad is not None)


def test_refusal_names_the_router_and_the_count():
    with pytest.raises(ValueError, match=r"NoisyTopKRouter: disabling 7 of n_routed_experts=8"):
        build_router("noisy_topk").disable_experts(list(range(7)))


def test_a_group_is_scored_by_its_remaining_experts():
    # Disabling one expert of a group must not drop the group's score to -inf (top2_sum, DeepSeek-V3's code).
    inf = float("inf")
    choice_TGE = torch.tensor([[[-inf, -inf], [0.5, -inf], [0.3, 0.2]]])
    assert group_scores(choice_TGE, 2).tolist() == [[-inf, 0.5, 0.5]]
