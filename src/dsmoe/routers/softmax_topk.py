"""DeepSeekMoE's router: softmax affinities, top-K' experts, optional group limit (DeepSeekMoE Eq. 3-5); and the
steps of top-k token choice it shares with sigmoid_topk and noisy_topk (group limiting, weight normalisation, the
pairs with their aux losses and stats)."""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.balance import balance_losses, choice_counts
from dsmoe.routers.base import Router, Routing, RouterStats, count_per_expert, no_drops, topk_pairs
from dsmoe.routers.device_dropping import drop_over_device_capacity


class SoftmaxTopKRouter(Router):
    """s_{i,t} = Softmax_i(u_t^T e_i); g_{i,t} = s_{i,t} if s_{i,t} in TopK(s_t, K') else 0."""

    traits = ROUTERS.traits("softmax_topk")

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        probs_TE = logits_TE.softmax(dim=-1)
        cfg = self.config
        choice_TE = limit_to_groups(self.without_disabled(probs_TE), cfg.n_group, cfg.topk_group, cfg.group_score_size)
        expert_indices_TK = choice_TE.topk(self.top_k, dim=-1).indices
        affinity_TK = probs_TE.gather(1, expert_indices_TK)
        routing = token_choice_routing(cfg, expert_indices_TK, normalise_and_scale(affinity_TK, cfg), probs_TE,
                                       logits_TE, batch_size, self.training, self.balance_counts_E)
        return drop_over_device_capacity(cfg, routing, affinity_TK, token_ids_T, batch_size, self.training)


def limit_to_groups(choice_TE: torch.Tensor, n_group: int, topk_group: int, scored_per_group: int) -> torch.Tensor:
    """Group-limited routing: mask (with -inf) the experts of every group outside each token's top `topk_group`
    groups, so a token chooses only inside them (DeepSeek-V2 Sec. 2.2.2, DeepSeek-V3 Sec. 2.1.2)."""
    if n_group == 1:
        return choice_TE
    n_tokens, n_experts = choice_TE.shape
    choice_TGX = choice_TE.view(n_tokens, n_group, n_experts // n_group)  # X = E / G: one group's experts
    top_groups_TY = group_scores(choice_TGX, scored_per_group).topk(topk_group, dim=-1).indices  # Y = topk_group
    keep_TG = torch.zeros(n_tokens, n_group, dtype=torch.bool, device=choice_TE.device)
    keep_TG.scatter_(1, top_groups_TY, True)
    return choice_TGX.masked_fill(~keep_TG.unsqueeze(-1), float("-inf")).view(n_tokens, n_experts)


def group_scores(choice_TGX: torch.Tensor, scored_per_group: int) -> torch.Tensor:
    """Score each group by the sum of its best `scored_per_group` scores (ModelConfig.group_score_size): 1 is
    its best expert (DeepSeek-V2 Sec. 2.2.2), 2 DeepSeek-V3's code, ceil(K_r/M) DeepSeek-V3 Sec. 2.1.2.
    Disabled experts (-inf, Router.disable_experts) do not count: a group is scored by its best remaining ones,
    and one with none left scores -inf."""
    best_TGY = choice_TGX.topk(scored_per_group, dim=-1).values  # X = E / G; Y = scored_per_group
    remaining_TGY = best_TGY.isfinite()
    score_TG = best_TGY.where(remaining_TGY, 0.0).sum(dim=-1)
    return score_TG.where(remaining_TGY.any(dim=-1), float("-inf"))


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
