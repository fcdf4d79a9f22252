"""Expert-choice routing (Zhou et al. 2022): each expert picks its top-C tokens.

Not causal: an expert's choice depends on every token of the batch, so a token's output can depend
on later tokens and on other sequences. Use it for training comparisons, not for generation.
"""

from __future__ import annotations

import torch

from dsmoe.registry import ROUTERS
from dsmoe.routers.balance import z_loss
from dsmoe.routers.base import Router, Routing, RouterStats
from dsmoe.routers.capacity import expert_capacity


class ExpertChoiceRouter(Router):
    """S = Softmax(X W_g) over experts; each expert takes TopK over tokens of its column, C tokens
    with C = ceil(capacity_factor * T * k / E) (Zhou et al. Eq. 1). Balanced by construction: no
    balance loss; tokens picked by no expert are reported as dropped."""

    traits = ROUTERS.traits("expert_choice")

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        probs_TE = logits_TE.softmax(dim=-1)
        n_tokens = x_TD.shape[0]
        capacity = min(n_tokens, expert_capacity(n_tokens, self.top_k, self.n_experts, self.config.capacity_factor))
        weights_EQ, token_index_EQ = probs_TE.t().topk(capacity, dim=-1)
        expert_index_EQ = torch.arange(self.n_experts, device=x_TD.device).unsqueeze(1).expand_as(token_index_EQ)
        picked = torch.zeros(n_tokens, dtype=torch.bool, device=x_TD.device)
        picked[token_index_EQ.reshape(-1)] = True
        tokens_per_expert = torch.full((self.n_experts,), capacity, dtype=torch.long, device=x_TD.device)
        stats = RouterStats(tokens_per_expert, (~picked).sum())
        aux = {"z_loss": z_loss(logits_TE, self.config.z_loss_coef)} if self.training and self.config.z_loss_coef > 0 else {}
        return Routing(token_index_EQ.reshape(-1), expert_index_EQ.reshape(-1), weights_EQ.reshape(-1), aux, stats)
