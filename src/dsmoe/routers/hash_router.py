"""Hash routing (Roller et al. 2021): a fixed random map from token id to experts; nothing is learned."""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, Routing, RouterStats, count_per_expert, no_drops, topk_pairs

HASH_SEED = 1234


class HashRouter(Router):
    """Token id v always goes to the same K distinct experts, each weighted 1/K (a fixed random hash).

    The table is drawn from a fixed seed, so every model with the same vocab and expert count routes
    identically; it is a non-persistent buffer rebuilt at construction.
    """

    traits = ROUTERS.traits("hash")

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.rebuild_buffers()

    def rebuild_buffers(self) -> None:
        generator = torch.Generator().manual_seed(HASH_SEED)
        draws_VE = torch.rand(self.config.vocab_size, self.n_experts, generator=generator, device="cpu")
        self.register_buffer("table_VK", draws_VE.topk(self.top_k, dim=-1).indices, persistent=False)

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        expert_indices_TK = self.table_VK[token_ids_T]
        weights_TK = torch.full(expert_indices_TK.shape, 1.0 / self.top_k, device=x_TD.device)
        token_index, expert_index, weight = topk_pairs(expert_indices_TK, weights_TK)
        stats = RouterStats(count_per_expert(expert_index, self.n_experts), no_drops(x_TD.device))
        return Routing(token_index, expert_index, weight, {}, stats)
