"""Group-limited routing: limit_to_groups against hand-built cases and a plain loop; the group_score rules."""

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.routers import ROUTERS
from dsmoe.routers.softmax_topk import limit_to_groups


def plain_limit_to_groups(choice_TE: torch.Tensor, n_group: int, topk_group: int, scored: int) -> torch.Tensor:
    """Per token: score every group (the sum of its `scored` best), keep the top groups, mask the rest."""
    per_group = choice_TE.shape[1] // n_group
    out = []
    for row in choice_TE.tolist():
        groups = [row[g * per_group:(g + 1) * per_group] for g in range(n_group)]
        scores = [sum(sorted(g, reverse=True)[:scored]) for g in groups]
        kept = sorted(range(n_group), key=lambda g: -scores[g])[:topk_group]
        out.append([v if i // per_group in kept else float("-inf") for i, v in enumerate(row)])
    return torch.tensor(out)


def test_single_group_returns_input_unchanged():
    """n_group=1 means no group limit: the scores come back as they went in."""
    choice_TE = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(limit_to_groups(choice_TE, 1, 1, 1), choice_TE)


def test_masks_exactly_the_unselected_groups():
    """Experts of the kept groups keep their scores; every expert of another group becomes -inf."""
    choice_TE = torch.tensor([[0.1, 0.2, 0.9, 0.8, 0.3, 0.4, 0.0, 0.05],
                              [0.7, 0.1, 0.0, 0.2, 0.05, 0.0, 0.6, 0.3]])
    inf = float("-inf")
    expected = torch.tensor([[inf, inf, 0.9, 0.8, 0.3, 0.4, inf, inf],   # groups 1 (0.9) and 2 (0.4)
                             [0.7, 0.1, inf, inf, inf, inf, 0.6, 0.3]])  # groups 0 (0.7) and 3 (0.6)
    assert torch.equal(limit_to_groups(choice_TE, 4, 2, 1), expected)


def test_best_one_two_and_three_pick_different_groups():
    """A = [0.9, 0.0, 0.0] (best 0.9; top-2 0.9; top-3 0.9), B = [0.8, 0.3, 0.0] (0.8; 1.1; 1.1),
    C = [0.5, 0.5, 0.5] (0.5; 1.0; 1.5): summing the best 1, 2, 3 picks A, B, C."""
    choice_TE = torch.tensor([[0.9, 0.0, 0.0, 0.8, 0.3, 0.0, 0.5, 0.5, 0.5]])
    for scored, kept in [(1, 0), (2, 1), (3, 2)]:
        expected = torch.full_like(choice_TE, float("-inf"))
        expected[0, 3 * kept:3 * kept + 3] = choice_TE[0, 3 * kept:3 * kept + 3]
        assert torch.equal(limit_to_groups(choice_TE, 3, 1, scored), expected)


@pytest.mark.parametrize("scored", [1, 2, 3])
@pytest.mark.parametrize("n_group,topk_group", [(2, 1), (4, 2), (4, 3), (8, 2)])
def test_matches_plain_loop(scored, n_group, topk_group):
    """limit_to_groups equals a per-token Python loop for every number of scores summed per group."""
    scored = min(scored, 16 // n_group)
    choice_TE = torch.rand(20, 16, generator=torch.Generator().manual_seed(n_group * 10 + topk_group))
    expected = plain_limit_to_groups(choice_TE, n_group, topk_group, scored)
    assert torch.equal(limit_to_groups(choice_TE, n_group, topk_group, scored), expected)


@pytest.mark.parametrize("router, group_score, top_k, topk_group, scored", [
    ("softmax_topk", None, 4, 2, 1),  # the router's own rule: its best expert (DeepSeek-V2 Sec. 2.2.2)
    ("sigmoid_topk", None, 4, 2, 2),  # the router's own rule: the top-2 sum (DeepSeek-V3's code)
    ("softmax_topk", "top2_sum", 4, 2, 2),
    ("sigmoid_topk", "max", 4, 2, 1),
    ("sigmoid_topk", "topk_sum", 6, 2, 3),  # K_r / M = 6 / 2 (DeepSeek-V3 Sec. 2.1.2)
    ("softmax_topk", "topk_sum", 5, 2, 3),  # ceil(5 / 2)
    ("softmax_topk", "topk_sum", 2, 4, 1),  # ceil(2 / 4)
])
def test_group_score_size_by_rule(router, group_score, top_k, topk_group, scored):
    """group_score (or the router's own rule) sums the best 1, 2 or ceil(K_r / M) scores of a group."""
    config = ModelConfig(router=router, n_routed_experts=16, n_activated_experts=top_k, n_group=4,
                         topk_group=topk_group, group_score=group_score)
    assert config.group_score_size == scored


@pytest.mark.parametrize("router", ["softmax_topk", "sigmoid_topk"])
@pytest.mark.parametrize("group_score, kept_group", [("max", 0), ("top2_sum", 1), ("topk_sum", 2)])
def test_router_chooses_inside_the_group_its_rule_ranks_first(router, group_score, kept_group):
    """A router given the affinities of groups A, B, C above (K' = 3, M = 1, so topk_sum sums the best 3)
    chooses all its experts from A under "max", B under "top2_sum", C under "topk_sum"."""
    config = ModelConfig(router=router, hidden_size=9, n_heads=1, head_dim=8, n_routed_experts=9,
                         n_activated_experts=3, n_group=3, topk_group=1, group_score=group_score)
    affinity_E = torch.tensor([0.9, 0.0, 0.0, 0.8, 0.3, 0.0, 0.5, 0.5, 0.5])
    logits_E = affinity_E.logit(eps=1e-6) if router == "sigmoid_topk" else affinity_E.clamp(min=1e-6).log()
    gate = ROUTERS[router](config).eval()
    with torch.no_grad():
        gate.weight.copy_(torch.diag(logits_E))  # a token of all ones then has these logits
    routing = gate(torch.ones(1, 9), torch.zeros(1, dtype=torch.long), 1)
    assert (routing.expert_index_S // 3).tolist() == [kept_group] * 3
