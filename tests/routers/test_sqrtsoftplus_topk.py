"""DeepSeek-V4's router (sqrtsoftplus_topk): s = sqrt(softplus(logit)), chosen by TopK(s + b), weighted by the unbiased
s renormalised and scaled as DeepSeek-V3's; the scores and weights by hand, and the bias update it inherits."""

import math

import torch

from dsmoe import ModelConfig
from dsmoe.routers import ROUTERS
from dsmoe.routers.affinity import AFFINITY_SCORES

# softplus(ln(e^(s^2) - 1)) = s^2, so these logits score sqrt(ln 2), 1, 2 and 3
LOGITS = [0.0, math.log(math.e - 1), math.log(math.e**4 - 1), math.log(math.e**9 - 1)]
SCORES = [math.sqrt(math.log(2)), 1.0, 2.0, 3.0]


def test_sqrt_softplus_scores_by_hand():
    torch.testing.assert_close(AFFINITY_SCORES["sqrtsoftplus"](torch.tensor([LOGITS])), torch.tensor([SCORES]))


def router_with_logits(**changes):
    """A 4-expert top-2 router whose gate gives every token the logits LOGITS (the tokens are the unit vector e_0)."""
    config = ModelConfig(hidden_size=8, n_heads=2, n_routed_experts=4, n_activated_experts=2,
                         router="sqrtsoftplus_topk", **changes)
    router = ROUTERS["sqrtsoftplus_topk"](config).eval()
    with torch.no_grad():
        router.weight.zero_()
        router.weight[:, 0] = torch.tensor(LOGITS)
        router.expert_bias.zero_()
    return router


def weights_by_expert(router) -> dict[int, float]:
    x_TD = torch.zeros(3, 8)
    x_TD[:, 0] = 1.0
    routing = router(x_TD, torch.zeros(3, dtype=torch.long), 1)
    pairs = {(e, round(w, 6)) for e, w in zip(routing.expert_index_S.tolist(), routing.weight_S.tolist())}
    assert len(pairs) == 2  # every token alike
    return dict(pairs)


def test_top_two_renormalised_then_scaled_by_hand():
    # experts 3 and 2 (scores 3 and 2): 1.5 * 3 / 5 and 1.5 * 2 / 5
    assert weights_by_expert(router_with_logits(routed_scaling_factor=1.5)) == {3: 0.9, 2: 0.6}


def test_without_renormalisation_the_weights_are_the_scores_scaled():
    assert weights_by_expert(router_with_logits(routed_scaling_factor=1.5, norm_topk_prob=False)) == {3: 4.5, 2: 3.0}


def test_the_bias_chooses_but_the_unbiased_scores_weight():
    # biased scores [0.83, 3.5, 2, 3]: experts 1 and 3, weighted 1.5 * 1 / 4 and 1.5 * 3 / 4
    router = router_with_logits(routed_scaling_factor=1.5)
    router.expert_bias[1] = 2.5
    assert weights_by_expert(router) == {1: 0.375, 3: 1.125}


def test_the_bias_follows_the_load_after_each_step():
    """Trained like sigmoid_topk: b_i += gamma * sign(mean load - load_i) after the step, from its own counts."""
    router = router_with_logits(bias_update_speed=0.01).train()
    x_TD = torch.zeros(3, 8)
    x_TD[:, 0] = 1.0
    router(x_TD, torch.zeros(3, dtype=torch.long), 1)  # experts 2 and 3 take every token
    router.apply_step_update()
    assert torch.equal(router.expert_bias, torch.tensor([0.01, 0.01, -0.01, -0.01]))
