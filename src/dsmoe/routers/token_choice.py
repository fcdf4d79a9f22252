"""Shared last step of the top-k token-choice routers: choose, weight, count, add aux losses."""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.routers.balance import balance_losses, choice_counts
from dsmoe.routers.base import Routing, RouterStats, count_per_expert, no_drops, topk_pairs


def normalise_and_scale(weights_TK: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Optional renormalisation over the chosen experts, then routed_scaling_factor (DeepSeek-V3 Eq. 13)."""
    if config.norm_topk_prob:
        weights_TK = weights_TK / (weights_TK.sum(dim=-1, keepdim=True) + 1e-20)
    return weights_TK * config.routed_scaling_factor


def token_choice_routing(config: ModelConfig, expert_indices_TK: torch.Tensor, weights_TK: torch.Tensor,
                         probs_TE: torch.Tensor, logits_TE: torch.Tensor, batch_size: int,
                         training: bool, global_counts_E: torch.Tensor | None = None,
                         own_losses: dict[str, torch.Tensor] | None = None) -> Routing:
    """Dropless routing of every token to its K chosen experts; aux losses only in training. `global_counts_E`:
    the router's global-batch counts (Router.balance_counts_E); `own_losses`: a router's own balance losses,
    in place of the expert-level one."""
    token_index, expert_index, weight = topk_pairs(expert_indices_TK, weights_TK)
    aux, counts_E = {}, None
    if training:
        counts_E = choice_counts(expert_indices_TK, config.n_routed_experts)
        aux = balance_losses(config, probs_TE, expert_indices_TK, counts_E, logits_TE, batch_size, global_counts_E,
                             expert_level=own_losses is None)
        aux.update(own_losses or {})
    stats = RouterStats(count_per_expert(expert_index, config.n_routed_experts), no_drops(weight.device))
    return Routing(token_index, expert_index, weight, aux, stats, counts_E)
