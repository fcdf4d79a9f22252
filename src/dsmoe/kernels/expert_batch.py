"""The routed experts' work in expert order: what a token dispatcher hands the expert kernels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def sort_by_expert(expert_index_S: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order_S putting pairs in expert order, int32 cumulative pair counts per expert for grouped_mm)."""
    order_S = torch.argsort(expert_index_S, stable=True)
    pairs_per_expert = torch.zeros(n_experts, dtype=torch.int32, device=expert_index_S.device)
    pairs_per_expert.scatter_add_(0, expert_index_S, torch.ones_like(expert_index_S, dtype=torch.int32))
    return order_S, torch.cumsum(pairs_per_expert, 0, dtype=torch.int32)


@dataclass
class ExpertBatch:
    """Pairs sorted by expert, each reading one row of x_RD and writing back into the same row.

    Pair s belongs to the expert whose block of pairs holds s (offsets_E: int32 cumulative pair counts, the
    `offs` of torch._grouped_mm); the kernels return rows_RD[r] = sum over pairs s with row_index_S[s] = r of
    weight_S[s] * expert(x_RD[r]). The rows are tokens for token-choice routing (so the kernel's output is
    already the combined one), Soft MoE slots, or, across devices, the tokens an all-to-all delivered.
    """

    x_RD: torch.Tensor
    row_index_S: torch.Tensor  # [S] int64
    weight_S: torch.Tensor  # [S]
    offsets_E: torch.Tensor  # [E] int32

    @classmethod
    def from_pairs(cls, x_RD: torch.Tensor, row_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                   weight_S: torch.Tensor, n_experts: int) -> ExpertBatch:
        """Pairs in any order, put in (stable) expert order."""
        order_S, offsets_E = sort_by_expert(expert_index_S, n_experts)
        return cls(x_RD, row_index_S.index_select(0, order_S), weight_S.index_select(0, order_S), offsets_E)

    @classmethod
    def equal_blocks(cls, x_ERD: torch.Tensor) -> ExpertBatch:
        """Expert e applied once to each row of its own block x_ERD[e], unweighted (Soft MoE slots)."""
        n_experts, rows_per_expert, hidden = x_ERD.shape
        n_rows = n_experts * rows_per_expert
        offsets_E = torch.arange(1, n_experts + 1, device=x_ERD.device, dtype=torch.int32) * rows_per_expert
        return cls(x_ERD.reshape(n_rows, hidden), torch.arange(n_rows, device=x_ERD.device),
                   torch.ones(n_rows, device=x_ERD.device), offsets_E)

    @property
    def pairs_per_expert_E(self) -> torch.Tensor:
        return torch.diff(self.offsets_E, prepend=self.offsets_E.new_zeros(1))

    def expert_index_S(self) -> torch.Tensor:
        """The expert of every pair, [S] int64 (non-decreasing)."""
        experts_E = torch.arange(self.offsets_E.shape[0], device=self.offsets_E.device)
        return experts_E.repeat_interleave(self.pairs_per_expert_E, output_size=self.row_index_S.shape[0])
