"""DeepSeek-V3's router: sigmoid affinities with auxiliary-loss-free bias balancing (Sec. 2.1.2)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from dsmoe.config import ModelConfig
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.grouping import limit_to_groups
from dsmoe.routers.token_choice import normalise_and_scale, token_choice_routing


class SigmoidTopKRouter(Router):
    """s_{i,t} = Sigmoid(u_t^T e_i); select TopK(s + b); gate with the unbiased s (Eq. 15-16).

    The bias b is an fp32 buffer, not a parameter: it never gets a gradient. In training mode every
    forward adds its token counts to `load_since_update`; `update_bias()` (called once per optimizer
    step by `install_bias_update`) applies b_i += gamma * sign(mean_load - load_i) and resets the
    counts. In eval mode nothing accumulates, so the bias is frozen. The sign rule is invariant to a
    uniform scaling of the counts, so recomputing forwards under activation checkpointing (which
    counts every token twice) leaves the update unchanged.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.register_buffer("expert_bias", torch.zeros(self.n_experts, dtype=torch.float32))
        self.register_buffer("load_since_update", torch.zeros(self.n_experts, dtype=torch.float32),
                             persistent=False)

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        scores_TE = logits_TE.sigmoid()
        cfg = self.config
        choice_TE = limit_to_groups(scores_TE + self.expert_bias, cfg.n_group, cfg.topk_group, rule="top2_sum")
        expert_indices_TK = choice_TE.topk(self.top_k, dim=-1).indices
        weights_TK = normalise_and_scale(scores_TE.gather(1, expert_indices_TK), cfg)
        probs_TE = scores_TE / scores_TE.sum(dim=-1, keepdim=True)  # s'_{i,t} of Eq. 19
        routing = token_choice_routing(cfg, expert_indices_TK, weights_TK, probs_TE, logits_TE, batch_size,
                                       self.training)
        if self.training:
            self.load_since_update += routing.stats.tokens_per_expert.to(torch.float32)
        return routing

    @torch.no_grad()
    def update_bias(self) -> None:
        """b_i += gamma * sign(mean load - load_i), with loads summed over ranks when distributed."""
        load_E = self.load_since_update
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(load_E)
        if load_E.sum() > 0:
            self.expert_bias += self.config.bias_update_speed * torch.sign(load_E.mean() - load_E)
        load_E.zero_()
