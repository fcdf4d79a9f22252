"""Capacity-limited top-1 (Switch, Fedus et al. 2021) and top-2 (GShard, Lepikhin et al. 2020) routers."""

from __future__ import annotations

import math

import torch

from dsmoe.registry import ROUTERS
from dsmoe.routers.balance import balance_losses, choice_counts
from dsmoe.routers.base import Router, Routing, RouterStats, count_per_expert, topk_pairs


def expert_capacity(n_tokens: int, top_k: int, n_experts: int, capacity_factor: float) -> int:
    """Slots per expert: ceil(capacity_factor * tokens * k / experts)."""
    return math.ceil(capacity_factor * n_tokens * top_k / n_experts)


def position_in_expert(expert_index_S: torch.Tensor, n_experts: int) -> torch.Tensor:
    """For each pair, how many earlier pairs (in S order) chose the same expert."""
    order = torch.argsort(expert_index_S, stable=True)
    counts = torch.bincount(expert_index_S, minlength=n_experts)
    starts = torch.cumsum(counts, 0) - counts
    positions = torch.empty_like(expert_index_S)
    positions[order] = torch.arange(expert_index_S.numel(), device=expert_index_S.device) - starts[expert_index_S[order]]
    return positions


class CapacityRouter(Router):
    """Softmax top-k with a fixed capacity per expert; assignments past it are dropped (the token's
    routed output is then zero and the residual carries it). Priority: every token's first choice
    before any second choice, earlier tokens first (GShard Algorithm 1)."""

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        probs_TE = logits_TE.softmax(dim=-1)
        top_probs_TK, expert_indices_TK = probs_TE.topk(self.top_k, dim=-1)
        weights_TK = self.combine_weights(top_probs_TK)
        token_index, expert_index, weight = (t.reshape(-1, self.top_k).t().reshape(-1)  # choice-major order
                                             for t in topk_pairs(expert_indices_TK, weights_TK))
        wanted = self.dispatch_mask(weights_TK).t().reshape(-1)
        capacity = expert_capacity(x_TD.shape[0], self.top_k, self.n_experts, self.config.capacity_factor)
        rank = position_in_expert(torch.where(wanted, expert_index, self.n_experts), self.n_experts + 1)
        keep = wanted & (rank < capacity)
        aux, counts_E = {}, None
        if self.training:  # f_i counts first choices only: GShard Algorithm 1's ce, Switch Eq. 5 (top-1 anyway)
            first_T1 = expert_indices_TK[:, :1]
            counts_E = choice_counts(first_T1, self.n_experts)
            aux = balance_losses(self.config, probs_TE, first_T1, counts_E, logits_TE, batch_size,
                                 self.balance_counts_E)
        stats = RouterStats(count_per_expert(expert_index[keep], self.n_experts), (wanted & ~keep).sum())
        return Routing(token_index[keep], expert_index[keep], weight[keep], aux, stats, counts_E)

    def combine_weights(self, top_probs_TK: torch.Tensor) -> torch.Tensor:
        return top_probs_TK

    def dispatch_mask(self, weights_TK: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(weights_TK, dtype=torch.bool)


class SwitchRouter(CapacityRouter):
    """Switch Transformer: top-1, gate = the chosen expert's softmax probability (Eq. 2)."""

    traits = ROUTERS.traits("switch")


class GShardRouter(CapacityRouter):
    """GShard top-2: gates renormalised over the two choices; in training the second expert is used
    only with probability min(1, 2 * g_2) (random routing, GShard Sec. 2.2 / Algorithm 1).

    Its balance loss counts first choices only (Algorithm 1: ce = mean_s of the top-1 one-hot, me = mean_s of
    the gates): alpha * sum_e f_e P_e with f_e = E * ce_e and P_e = me_e is alpha * E^2 * mean_e(ce_e me_e),
    exactly fairseq's and DeepSpeed's top2gating l_aux (mean(me * ce) * E * E) times alpha, 1 * alpha under
    uniform routing; the paper's own (1/E) sum_e ce_e me_e is that over E^2."""

    traits = ROUTERS.traits("gshard")

    def combine_weights(self, top_probs_TK: torch.Tensor) -> torch.Tensor:
        return top_probs_TK / top_probs_TK.sum(dim=-1, keepdim=True)

    def dispatch_mask(self, weights_TK: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(weights_TK, dtype=torch.bool)
        if self.training:
            mask[:, 1] = torch.rand_like(weights_TK[:, 1]) < 2 * weights_TK[:, 1].detach()
        return mask
