"""Routed experts stored as stacked weights [E, ...], computed by a fast or a reference kernel."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.kernels import ExpertBatch, run_experts


def autocast_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in here: autocast's when it is on, else x's own."""
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype


class RoutedExperts(nn.Module):
    """N' SwiGLU experts of width F: gate_up_proj [E, 2F, D] (gate rows first), down_proj [E, D, F]."""

    # Each stack's matrices per expert, as a dense SwiGLU FFN holds them: gate_up_proj is gate_proj and up_proj.
    MATRICES_PER_EXPERT = {"gate_up_proj": 2, "down_proj": 1}

    def __init__(self, config: ModelConfig):
        super().__init__()
        n, d, f = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.dispatch = config.dispatch
        self.gate_up_proj = nn.Parameter(torch.empty(n, 2 * f, d))
        self.down_proj = nn.Parameter(torch.empty(n, d, f))

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype = autocast_dtype(x)
        return x.to(dtype), self.gate_up_proj.to(dtype), self.down_proj.to(dtype)

    def forward(self, batch: ExpertBatch) -> torch.Tensor:
        """rows_RD: every pair's expert output, weighted and summed into the row it read (see ExpertBatch)."""
        x_RD, gate_up, down = self.weights(batch.x_RD)
        return run_experts(self.dispatch, dataclasses.replace(batch, x_RD=x_RD), gate_up, down)
