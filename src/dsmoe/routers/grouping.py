"""Group-limited routing: a token may only choose experts inside its top `topk_group` groups."""

from __future__ import annotations

import torch


def group_scores(choice_TGE: torch.Tensor, scored_per_group: int) -> torch.Tensor:
    """Score each group by the sum of its best `scored_per_group` scores (ModelConfig.group_score_size): 1 is
    its best expert (DeepSeek-V2 Sec. 2.2.2), 2 DeepSeek-V3's code, ceil(K_r/M) DeepSeek-V3 Sec. 2.1.2.
    Disabled experts (-inf, Router.disable_experts) do not count: a group is scored by its best remaining ones,
    and one with none left scores -inf."""
    best_TGN = choice_TGE.topk(scored_per_group, dim=-1).values
    remaining_TGN = best_TGN.isfinite()
    score_TG = best_TGN.where(remaining_TGN, 0.0).sum(dim=-1)
    return score_TG.where(remaining_TGN.any(dim=-1), float("-inf"))


def limit_to_groups(choice_TE: torch.Tensor, n_group: int, topk_group: int, scored_per_group: int) -> torch.Tensor:
    """Mask (with -inf) the experts of every group outside each token's top `topk_group` groups."""
    if n_group == 1:
        return choice_TE
    n_tokens, n_experts = choice_TE.shape
    choice_TGE = choice_TE.view(n_tokens, n_group, n_experts // n_group)
    top_groups_TM = group_scores(choice_TGE, scored_per_group).topk(topk_group, dim=-1).indices
    keep_TG = torch.zeros(n_tokens, n_group, dtype=torch.bool, device=choice_TE.device)
    keep_TG.scatter_(1, top_groups_TM, True)
    return choice_TGE.masked_fill(~keep_TG.unsqueeze(-1), float("-inf")).view(n_tokens, n_experts)
