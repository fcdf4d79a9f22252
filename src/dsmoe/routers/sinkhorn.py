"""Sinkhorn-balanced routing: BASE layers (Lewis et al. 2021) as Megatron-Core runs them
(moe_router_load_balancing_type="sinkhorn", megatron/core/transformer/moe/moe_utils.py's `sinkhorn` and the router's
`sinkhorn_load_balancing`).

In training, Sinkhorn iterations scale exp(logits) [T, E] into a plan whose rows each sum to 1/T and whose columns
each sum to 1/E, every expert taking an equal share of the micro-batch, and each token takes the top-k experts of
that plan. BASE layers solve that balanced assignment exactly (an auction); the Sinkhorn plan is its entropic
relaxation (S-BASE, Clark et al. 2022), so top-k of it is balanced closely, not to the token. The combine weights
are still the token's own scores of the chosen experts, which is what the gate learns through. At inference each
token takes the plain top-k of its scores, so generation is causal; in training a token's experts depend on the
whole micro-batch (each rank's own under data parallelism, as in Megatron-Core).

Megatron-Core refuses an aux loss with it: the router adds no expert-level loss (aux_loss_alpha is not read, and
validation keeps balance_scope="micro_batch"); the z-loss and the device-level loss apply as for any router.
"""

from __future__ import annotations

import torch

from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.softmax_topk import normalise_and_scale, token_choice_routing

EPS = 1e-8  # Megatron-Core's guard against a row or column that sums to zero (a disabled expert's column)


@torch.no_grad()
def sinkhorn(logits_TE: torch.Tensor, max_iterations: int, tol: float) -> torch.Tensor:
    """The plan d0_t exp(logit_{t,i}) d1_i, Megatron-Core's Sinkhorn-Knopp iteration: d0 scales every row to sum
    to 1/T, then d1 every column to 1/E, until the mean absolute change of d1 is <= tol or after max_iterations."""
    cost_TE = (logits_TE - logits_TE.amax(dim=-1, keepdim=True)).exp()  # a row's factor folds into its d0: same plan
    n_tokens, n_experts = cost_TE.shape
    d0_T, d1_E = cost_TE.new_ones(n_tokens), cost_TE.new_ones(n_experts)
    for _ in range(max_iterations):
        d0_T = 1 / (n_tokens * ((cost_TE * d1_E).sum(dim=1) + EPS))  # rows to 1/T
        new_d1_E = 1 / (n_experts * ((d0_T.unsqueeze(1) * cost_TE).sum(dim=0) + EPS))  # columns to 1/E
        error = (new_d1_E - d1_E).abs().mean()
        d1_E = new_d1_E
        if error <= tol:  # data-dependent: a compiled training forward breaks its graph here
            break
    return d0_T.unsqueeze(1) * cost_TE * d1_E


class SinkhornRouter(Router):
    """Training: experts = TopK(Sinkhorn(logits), k); always: weights = the chosen experts' scores, sigmoid for
    top-1 (BASE layers gate their one expert by a sigmoid) and the softmax over all experts for top-k > 1
    (Megatron-Core's _sinkhorn_activation); inference: experts = TopK(scores, k)."""

    traits = ROUTERS.traits("sinkhorn")

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        scores_TE = self.scores(logits_TE)
        cfg = self.config
        choice_TE = sinkhorn(logits_TE, cfg.sinkhorn_max_iterations, cfg.sinkhorn_tol) if self.training else scores_TE
        expert_indices_TK = self.without_disabled(choice_TE).topk(self.top_k, dim=-1).indices
        weights_TK = normalise_and_scale(scores_TE.gather(1, expert_indices_TK), cfg)
        return token_choice_routing(cfg, expert_indices_TK, weights_TK, logits_TE.softmax(dim=-1), logits_TE,
                                    batch_size, self.training, own_losses={})  # the softmax: P_i of the device loss

    def scores(self, logits_TE: torch.Tensor) -> torch.Tensor:
        return logits_TE.sigmoid() if self.top_k == 1 else logits_TE.softmax(dim=-1)
