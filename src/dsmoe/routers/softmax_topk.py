"""DeepSeekMoE's router: softmax affinities, top-K' experts, optional group limit (DeepSeekMoE Eq. 3-5)."""

from __future__ import annotations

import torch

from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.device_dropping import drop_over_device_capacity
from dsmoe.routers.grouping import limit_to_groups
from dsmoe.routers.token_choice import normalise_and_scale, token_choice_routing


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
