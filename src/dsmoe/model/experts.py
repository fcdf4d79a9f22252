"""Routed experts stored as stacked weights [E, ...], computed by a fast or a reference kernel."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.kernels import run_experts, run_experts_on_slots
from dsmoe.routers import Routing, SoftRouting


def autocast_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in here: autocast's when it is on, else x's own."""
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype


class RoutedExperts(nn.Module):
    """N' SwiGLU experts of width F: gate_up_proj [E, 2F, D] (gate rows first), down_proj [E, D, F]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        n, d, f = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.dispatch = config.dispatch
        self.gate_up_proj = nn.Parameter(torch.empty(n, 2 * f, d))
        self.down_proj = nn.Parameter(torch.empty(n, d, f))

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype = autocast_dtype(x)
        return x.to(dtype), self.gate_up_proj.to(dtype), self.down_proj.to(dtype)

    def forward(self, x_TD: torch.Tensor, routing: Routing) -> torch.Tensor:
        x_TD, gate_up, down = self.weights(x_TD)
        return run_experts(self.dispatch, x_TD, routing.token_index_S, routing.expert_index_S, routing.weight_S,
                           gate_up, down)

    def forward_soft(self, x_BLD: torch.Tensor, routing: SoftRouting) -> torch.Tensor:
        """Soft MoE: slots = D^T X per sequence, experts on their slots, Y = C * slot outputs."""
        x_BLD, gate_up, down = self.weights(x_BLD)
        batch, n_experts = x_BLD.shape[0], gate_up.shape[0]
        slots_BCD = torch.einsum("blc,bld->bcd", routing.dispatch_BLC.to(x_BLD.dtype), x_BLD)
        slots_ESD = slots_BCD.reshape(batch, n_experts, -1, x_BLD.shape[-1]).transpose(0, 1).reshape(n_experts, -1, x_BLD.shape[-1])
        y_ESD = run_experts_on_slots(self.dispatch, slots_ESD.contiguous(), gate_up, down)
        y_BCD = y_ESD.reshape(n_experts, batch, -1, x_BLD.shape[-1]).transpose(0, 1).reshape(batch, -1, x_BLD.shape[-1])
        return torch.einsum("blc,bcd->bld", routing.combine_BLC.to(y_BCD.dtype), y_BCD)
