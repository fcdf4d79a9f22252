"""The router interface: hidden states in; token-expert assignments, aux losses and stats out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.config import ModelConfig


@dataclass
class RouterStats:
    """Detached routing statistics of one MoE layer for one forward pass."""

    tokens_per_expert: torch.Tensor  # [E] int64: token-expert assignments each expert processed
    dropped_tokens: torch.Tensor  # [] int64: assignments chosen but dropped by capacity limits


@dataclass
class Routing:
    """A token-choice or expert-choice routing as flat token-expert pairs.

    Pair s sends token `token_index_S[s]` to expert `expert_index_S[s]` and scales that expert's
    output by `weight_S[s]` before summing into the token's output.
    """

    token_index_S: torch.Tensor  # [S] int64
    expert_index_S: torch.Tensor  # [S] int64
    weight_S: torch.Tensor  # [S] float32
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: RouterStats | None = None


@dataclass
class SoftRouting:
    """Soft MoE routing (Puigcerver et al. 2023): every slot is a weighted mix of a sequence's tokens.

    slot j of expert e (column e * slots_per_expert + j) reads sum_t dispatch[b, t, col] * x[b, t]
    and token t reads sum_col combine[b, t, col] * slot_output[b, col].
    """

    dispatch_BLC: torch.Tensor  # softmax over tokens (dim 1)
    combine_BLC: torch.Tensor  # softmax over slots (dim 2)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: RouterStats | None = None


class Router(nn.Module, ABC):
    """Base class: holds the gate weight [E, D] (DeepSeek's `gate.weight`) and computes fp32 logits."""

    has_gate: bool = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.n_experts = config.n_routed_experts
        self.top_k = config.n_activated_experts
        if self.has_gate:
            self.weight = nn.Parameter(torch.empty(self.gate_rows(config), config.hidden_size))

    @staticmethod
    def gate_rows(config: ModelConfig) -> int:
        return config.n_routed_experts

    def logits(self, x_TD: torch.Tensor) -> torch.Tensor:
        """Router logits in fp32 even under autocast (routing decisions are precision-sensitive)."""
        with torch.autocast(device_type=x_TD.device.type, enabled=False):
            return nn.functional.linear(x_TD.float(), self.weight.float())

    @abstractmethod
    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing | SoftRouting:
        """Route the batch's T = batch_size * seq_len tokens (flattened in sequence order)."""


def topk_pairs(expert_indices_TK: torch.Tensor, weights_TK: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flatten [T, K] top-k choices into (token_index_S, expert_index_S, weight_S) pairs."""
    n_tokens, k = expert_indices_TK.shape
    token_index = torch.arange(n_tokens, device=expert_indices_TK.device).repeat_interleave(k)
    return token_index, expert_indices_TK.reshape(-1), weights_TK.reshape(-1)


def count_per_expert(expert_index_S: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Pairs per expert, [n_experts] (a scatter, not bincount, so the shape never depends on the data)."""
    counts_E = torch.zeros(n_experts, dtype=torch.long, device=expert_index_S.device)
    return counts_E.scatter_add_(0, expert_index_S.detach(), torch.ones_like(expert_index_S.detach()))


def no_drops(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.long, device=device)
