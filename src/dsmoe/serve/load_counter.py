"""Live expert load: routed token-expert assignments per MoE layer and expert, summed over every forward the
engine runs (pads are never routed, so only real tokens count), readable from any thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from dsmoe.routers import RouterStats


@dataclass(frozen=True)
class LoadSnapshot:
    """tokens_per_expert[z][e]: assignments expert e of MoE layer moe_layers[z] took; forwards: forwards counted."""

    moe_layers: list[int]
    tokens_per_expert: list[list[int]]
    forwards: int


class ExpertLoad:
    """Counts on the model's device (adding them costs no host sync); snapshot() copies them out."""

    def __init__(self, moe_layers: list[int], n_routed_experts: int, device: torch.device):
        self.moe_layers = list(moe_layers)
        self.tokens_per_expert_ZE = torch.zeros(len(moe_layers), n_routed_experts, dtype=torch.long, device=device)
        self.forwards = 0
        self.lock = threading.Lock()

    def add(self, router_stats: list[RouterStats]) -> None:
        """One forward's ModelOutput.router_stats, one per MoE layer."""
        with self.lock:
            if router_stats:
                self.tokens_per_expert_ZE += torch.stack([stats.tokens_per_expert for stats in router_stats])
            self.forwards += 1

    def snapshot(self) -> LoadSnapshot:
        with self.lock:
            return LoadSnapshot(self.moe_layers, self.tokens_per_expert_ZE.tolist(), self.forwards)
