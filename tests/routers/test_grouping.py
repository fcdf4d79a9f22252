"""Group-limited routing: limit_to_groups against hand-built cases and a plain loop."""

import pytest
import torch

from dsmoe.routers.grouping import limit_to_groups


def plain_limit_to_groups(choice_TE: torch.Tensor, n_group: int, topk_group: int, rule: str) -> torch.Tensor:
    """Per token: score every group (best expert, or sum of its two best), keep the top groups, mask the rest."""
    per_group = choice_TE.shape[1] // n_group
    out = []
    for row in choice_TE.tolist():
        groups = [row[g * per_group:(g + 1) * per_group] for g in range(n_group)]
        scores = [max(g) if rule == "max" else sum(sorted(g, reverse=True)[:2]) for g in groups]
        kept = sorted(range(n_group), key=lambda g: -scores[g])[:topk_group]
        out.append([v if i // per_group in kept else float("-inf") for i, v in enumerate(row)])
    return torch.tensor(out)


def test_single_group_returns_input_unchanged():
    """n_group=1 means no group limit: the scores come back as they went in."""
    choice_TE = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(limit_to_groups(choice_TE, 1, 1, "max"), choice_TE)


def test_masks_exactly_the_unselected_groups():
    """Experts of the kept groups keep their scores; every expert of another group becomes -inf."""
    choice_TE = torch.tensor([[0.1, 0.2, 0.9, 0.8, 0.3, 0.4, 0.0, 0.05],
                              [0.7, 0.1, 0.0, 0.2, 0.05, 0.0, 0.6, 0.3]])
    inf = float("-inf")
    expected = torch.tensor([[inf, inf, 0.9, 0.8, 0.3, 0.4, inf, inf],   # groups 1 (0.9) and 2 (0.4)
                             [0.7, 0.1, inf, inf, inf, inf, 0.6, 0.3]])  # groups 0 (0.7) and 3 (0.6)
    assert torch.equal(limit_to_groups(choice_TE, 4, 2, "max"), expected)


def test_max_and_top2_sum_rules_pick_different_groups():
    """Group A = [0.9, 0.0] wins by its best expert; group B = [0.6, 0.5] wins by its top-2 sum."""
    choice_TE = torch.tensor([[0.9, 0.0, 0.6, 0.5]])
    inf = float("-inf")
    assert torch.equal(limit_to_groups(choice_TE, 2, 1, "max"), torch.tensor([[0.9, 0.0, inf, inf]]))
    assert torch.equal(limit_to_groups(choice_TE, 2, 1, "top2_sum"), torch.tensor([[inf, inf, 0.6, 0.5]]))


@pytest.mark.parametrize("rule", ["max", "top2_sum"])
@pytest.mark.parametrize("n_group,topk_group", [(2, 1), (4, 2), (4, 3), (8, 2)])
def test_matches_plain_loop(rule, n_group, topk_group):
    """limit_to_groups equals a per-token Python loop for both group-scoring rules."""
    choice_TE = torch.rand(20, 16, generator=torch.Generator().manual_seed(n_group * 10 + topk_group))
    expected = plain_limit_to_groups(choice_TE, n_group, topk_group, rule)
    assert torch.equal(limit_to_groups(choice_TE, n_group, topk_group, rule), expected)
