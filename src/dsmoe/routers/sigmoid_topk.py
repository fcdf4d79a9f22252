"""DeepSeek-V3's router: sigmoid affinities with auxiliary-loss-free bias balancing (Sec. 2.1.2); DeepSeek-V4's
(sqrtsoftplus_topk) is the same router with another score."""

from __future__ import annotations

from typing import ClassVar

import torch

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.affinity import AFFINITY_SCORES, normalised
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.device_dropping import drop_over_device_capacity
from dsmoe.routers.softmax_topk import limit_to_groups, normalise_and_scale, token_choice_routing


class SigmoidTopKRouter(Router):
    """s_{i,t} = Sigmoid(u_t^T e_i); select TopK(s + b); gate with the unbiased s (Eq. 15-16). A subclass with
    another `traits.scoring_func` computes s with that score (routers/affinity.py) and keeps everything else.

    The bias b is an fp32 buffer, not a parameter: it never gets a gradient. In training mode every
    forward adds its token counts to `load_since_update` (its pending statistic); `apply_step_update()`
    (called once per optimizer step by `install_router_updates`, after the counts were summed over
    data-parallel ranks) applies b_i += gamma * sign(mean_load - load_i) and resets the counts. In eval
    mode nothing accumulates, so the bias is frozen. The sign rule is invariant to a uniform scaling of
    the counts, so recomputing forwards under activation checkpointing (which counts every token twice)
    leaves the update unchanged.
    """

    traits = ROUTERS.traits("sigmoid_topk")
    HF_TENSOR_NAMES: ClassVar[dict[str, str]] = {"weight": "weight", "expert_bias": "e_score_correction_bias"}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.register_buffer("expert_bias", torch.zeros(self.n_experts, dtype=torch.float32))
        self.rebuild_buffers()

    def rebuild_buffers(self) -> None:
        self.register_buffer("load_since_update", torch.zeros(self.n_experts, dtype=torch.float32,
                                                              device=self.expert_bias.device), persistent=False)

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        scores_TE = self.scores(logits_TE)
        cfg = self.config
        biased_TE = self.without_disabled(scores_TE + self.expert_bias)  # s(-inf) = 0, but a bias could win
        choice_TE = limit_to_groups(biased_TE, cfg.n_group, cfg.topk_group, cfg.group_score_size)
        expert_indices_TK = choice_TE.topk(self.top_k, dim=-1).indices
        affinity_TK = scores_TE.gather(1, expert_indices_TK)
        probs_TE = normalised(scores_TE)
        routing = token_choice_routing(cfg, expert_indices_TK, normalise_and_scale(affinity_TK, cfg), probs_TE,
                                       logits_TE, batch_size, self.training, self.balance_counts_E)
        if self.training:  # the bias follows the router's choices, counted before any device-level dropping
            self.load_since_update += routing.stats.tokens_per_expert.to(torch.float32)
        return drop_over_device_capacity(cfg, routing, affinity_TK, token_ids_T, batch_size, self.training)

    def scores(self, logits_TE: torch.Tensor) -> torch.Tensor:
        """[T, E] s_{i,t}: the score of the router's scoring_func."""
        return AFFINITY_SCORES[self.traits.scoring_func](logits_TE)

    def affinities(self, x_TD: torch.Tensor) -> torch.Tensor:
        return normalised(self.scores(self.logits(x_TD)))

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        super().init_weights(std)
        self.expert_bias.zero_()

    def pending_statistics(self) -> list[torch.Tensor]:
        return [self.load_since_update]

    @torch.no_grad()
    def apply_step_update(self) -> None:
        """b_i += gamma * sign(mean load - load_i) (Sec. 2.1.2), then the counts restart."""
        load_E = self.load_since_update
        if load_E.sum() > 0:
            self.expert_bias += self.config.bias_update_speed * torch.sign(load_E.mean() - load_E)
        load_E.zero_()
