"""The affinity scores s_{i,t} a gate computes from its logits u_t^T e_i, by the router's RouterTraits.scoring_func
(DeepSeek's config.json name for it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sqrt_softplus(logits_TE: torch.Tensor) -> torch.Tensor:
    return F.softplus(logits_TE).sqrt()  # DeepSeek-V4: s_{i,t} = sqrt(Softplus(u_t^T e_i)) (transformers' sqrtsoftplus)


AFFINITY_SCORES = {  # scoring_func -> [T, E] scores from [T, E] logits
    "softmax": lambda logits_TE: logits_TE.softmax(dim=-1),  # DeepSeekMoE Eq. 5, DeepSeek-V2 Eq. 22
    "sigmoid": torch.sigmoid,  # DeepSeek-V3 Eq. 15
    "sqrtsoftplus": sqrt_softplus,  # DeepSeek-V4
}


def normalised(scores_TE: torch.Tensor) -> torch.Tensor:
    """s'_{i,t} = s_{i,t} / sum_j s_{j,t} (DeepSeek-V3 Eq. 19): the scores as a distribution over the experts."""
    return scores_TE / scores_TE.sum(dim=-1, keepdim=True)
