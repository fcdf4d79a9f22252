"""Soft MoE (Puigcerver et al. 2023, Sec. 2.1): experts process slots, each a soft mix of tokens.

Not causal: every slot mixes all tokens of its sequence, so a token's output depends on later
tokens. Use it for training comparisons, not for generation.
"""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, RouterStats, SoftRouting, no_drops


class SoftMoERouter(Router):
    """Logits = X Phi with Phi [D, E * p]; D = softmax over tokens (Eq. 1), C = softmax over slots
    (Eq. 3), per sequence. p = config.slots_per_expert matches top-k FLOPs at max_seq_len."""

    traits = ROUTERS.traits("soft_moe")

    @staticmethod
    def gate_rows(config: ModelConfig) -> int:
        return config.n_routed_experts * config.slots_per_expert

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> SoftRouting:
        logits_BLX = self.logits(x_TD).reshape(batch_size, -1, self.weight.shape[0])  # X = E * Q: every slot
        slots = self.config.slots_per_expert
        tokens_per_expert = torch.full((self.n_experts,), batch_size * slots, dtype=torch.long, device=x_TD.device)
        stats = RouterStats(tokens_per_expert, no_drops(x_TD.device))
        return SoftRouting(logits_BLX.softmax(dim=1), logits_BLX.softmax(dim=2), {}, stats)
