"""Soft MoE (Puigcerver et al. 2023, Sec. 2.1): experts process slots, each a soft mix of tokens.

Not causal: every slot mixes all tokens of its sequence, so a token's output depends on later
tokens. Use it for training comparisons, not for generation.
"""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, RouterStats, SoftRouting, no_drops


class SoftMoERouter(Router):
    """Logits = X Phi with Phi [D, E * p]; D = softmax over tokens (Eq. 1), C = softmax over slots
    (Eq. 3), per sequence. p = config.slots_per_expert matches top-k FLOPs at max_seq_len. With
    soft_moe_normalise, X and Phi are l2-normalised over the hidden width and Phi scaled by a learned scalar."""

    traits = ROUTERS.traits("soft_moe")

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        if config.soft_moe_normalise:
            self.scale = nn.Parameter(torch.empty(1))  # shape [1], not []: FSDP shards a parameter along dim 0

    @staticmethod
    def gate_rows(config: ModelConfig) -> int:
        return config.n_routed_experts * config.slots_per_expert

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> SoftRouting:
        logits_BLX = self.logits(x_TD).reshape(batch_size, -1, self.weight.shape[0])  # X = E * Q: every slot
        slots = self.config.slots_per_expert
        tokens_per_expert = torch.full((self.n_experts,), batch_size * slots, dtype=torch.long, device=x_TD.device)
        stats = RouterStats(tokens_per_expert, no_drops(x_TD.device))
        return SoftRouting(logits_BLX.softmax(dim=1), logits_BLX.softmax(dim=2), {}, stats)

    def logits(self, x_TD: torch.Tensor) -> torch.Tensor:
        if not self.config.soft_moe_normalise:
            return super().logits(x_TD)
        with torch.autocast(device_type=x_TD.device.type, enabled=False):
            # Sec. 2.3: X -> l2_normalize(X, axis=1), Phi -> scale * l2_normalize(Phi, axis=0); X = E * Q: the slots
            phi_XD = self.scale.float() * l2_normalize(self.weight.float())
            return nn.functional.linear(l2_normalize(x_TD.float()), phi_XD)

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        super().init_weights(std)
        if self.config.soft_moe_normalise:
            nn.init.ones_(self.scale)


def l2_normalize(rows_TD: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / (||x||_2 + eps) over the last dimension (Puigcerver et al. 2023, Algorithm 1)."""
    return rows_TD / (rows_TD.norm(dim=-1, keepdim=True) + eps)
