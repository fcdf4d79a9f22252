"""The DeepSeekMoE layer: always-on shared experts plus fine-grained routed experts (DeepSeekMoE Eq. 9-11),
the routed part as route -> dispatch -> experts -> combine (see dispatch.py)."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.dispatch import LocalDispatcher, TokenDispatcher
from dsmoe.model.experts import RoutedExperts
from dsmoe.model.ffn import SwiGLU
from dsmoe.routers import ROUTERS, RouterStats


class MoE(nn.Module):
    """h_t = sum_{shared} FFN_i(u_t) + sum_{routed} g_{i,t} FFN_i(u_t); the residual is added by the block.

    With config.shared_expert_gate the shared term is scaled by sigmoid(shared_expert_gate(u_t)) (Qwen2-MoE).
    `dispatcher` moves tokens to the routed experts and back; parallelism replaces it from outside.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.router = ROUTERS[config.router](config)
        self.experts = RoutedExperts(config)
        self.dispatcher: TokenDispatcher = LocalDispatcher(config.n_routed_experts)
        shared_width = config.shared_expert_width
        self.shared_experts = SwiGLU(config.hidden_size, shared_width) if shared_width else None
        self.shared_expert_gate = nn.Linear(config.hidden_size, 1, bias=False) if config.shared_expert_gate else None

    def forward(self, x_BLD: torch.Tensor, token_ids_BL: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RouterStats]:
        batch, seq_len, hidden = x_BLD.shape
        x_TD = x_BLD.reshape(-1, hidden)
        routing = self.router(x_TD, token_ids_BL.reshape(-1), batch)
        expert_batch = self.dispatcher.dispatch(x_TD, routing)
        rows_RD = self.experts(expert_batch)
        out_BLD = self.dispatcher.combine(rows_RD, expert_batch, routing).reshape(batch, seq_len, hidden)
        if self.shared_experts is not None:
            out_BLD = out_BLD + self.shared_output(x_BLD)
        return out_BLD, routing.aux_losses, routing.stats

    def shared_output(self, x_BLD: torch.Tensor) -> torch.Tensor:
        shared_BLD = self.shared_experts(x_BLD)
        if self.shared_expert_gate is None:
            return shared_BLD
        return torch.sigmoid(self.shared_expert_gate(x_BLD)) * shared_BLD
