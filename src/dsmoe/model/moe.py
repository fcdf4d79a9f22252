"""The DeepSeekMoE layer top to bottom: always-on shared experts plus fine-grained routed experts (DeepSeekMoE
Eq. 9-11), the routed part as route -> dispatch -> experts -> combine.

The router (dsmoe.routers) gives token-expert pairs with weights (Routing) or Soft MoE's slot mixes (SoftRouting).
The dispatcher turns them into the experts' work in expert order, an ExpertBatch; RoutedExperts computes it with
the kernel that `expert_kernel` and the tensors allow (dsmoe.kernels.fused: the fused grouped_mm op and its loop
twin); the dispatcher combines the experts' rows back into one output per token. The local dispatcher leaves the
permutation lazy: the fused op gathers the rows, runs the experts and scatter-adds the weighted outputs in one
call, so nothing is copied in between. A dispatcher that moves tokens between devices (the all-to-all of
dsmoe.parallel.expert_parallel) replaces `MoE.dispatcher` from outside; the model never knows ranks.

Shape letters (x_TD, gate_up_EFD, rows_RD, ...) are those of docs/CONVENTIONS.md.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.kernels.fused import (dtype_name, fused_grouped_experts, grouped_mm_unavailable, loop_experts,
                                 sort_by_expert, swiglu, use_grouped_mm)
from dsmoe.kernels.pairwise import pairwise_experts, use_pairwise
from dsmoe.routers import ROUTERS, Router, RouterStats, Routing, SoftRouting
from dsmoe.routers.hash_gate import HashGateRouter


class MoE(nn.Module):
    """h_t = sum_{shared} FFN_i(u_t) + sum_{routed} g_{i,t} FFN_i(u_t); the residual is added by the block.

    With config.shared_expert_gate the shared term is scaled by sigmoid(shared_expert_gate(u_t)) (Qwen2-MoE).
    `dispatcher` moves tokens to the routed experts and back; parallelism replaces it from outside. Layer
    `layer_idx` routes with config.router, or by a token-id table if it is one of config.hash_layers.
    """

    def __init__(self, config: ModelConfig, layer_idx: int = 0):
        super().__init__()
        self.router = layer_router(config, layer_idx)
        self.experts = RoutedExperts(config)
        self.dispatcher: TokenDispatcher = LocalDispatcher(config.n_routed_experts)
        shared_width = config.shared_expert_width
        self.shared_experts = SwiGLU(config.hidden_size, shared_width, config.swiglu_limit) if shared_width else None
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


def layer_router(config: ModelConfig, layer_idx: int) -> Router:
    """DeepSeek-V4's hash router in the first n_hash_layers MoE layers (dsmoe.routers.hash_gate), else config.router."""
    if layer_idx in config.hash_layers:
        return HashGateRouter(config, layer_idx)
    return ROUTERS[config.router](config)


@dataclass
class ExpertBatch:
    """The routed experts' work in expert order: pairs sorted by expert, each reading one row of x_RD and writing
    back into the same row.

    Pair s belongs to the expert whose block of pairs holds s (offsets_E: int32 cumulative pair counts, the
    `offs` of torch._grouped_mm); the experts return rows_RD[r] = sum over pairs s with row_index_S[s] = r of
    weight_S[s] * expert(x_RD[r]). The rows are tokens for token-choice routing (so the experts' output is
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


class TokenDispatcher(ABC):
    """Permutes a layer's tokens to its experts and combines what comes back."""

    def __init__(self, n_experts: int):
        self.n_experts = n_experts  # the layer's routed experts, over all devices

    @abstractmethod
    def dispatch(self, x_TD: torch.Tensor, routing: Routing | SoftRouting) -> ExpertBatch:
        """The work of the experts this process holds, sorted by expert."""

    @abstractmethod
    def combine(self, rows_RD: torch.Tensor, batch: ExpertBatch, routing: Routing | SoftRouting) -> torch.Tensor:
        """[T, D]: each token's routed output, from the experts' rows_RD for `batch` (as dispatch returned it)."""


class LocalDispatcher(TokenDispatcher):
    """Every expert in this process. Token-expert pairs are sorted by expert, each reading its token's row in place
    (no copy), so the experts' rows come back already weighted and summed per token; Soft MoE's slots are mixed
    from the tokens and back, per sequence."""

    def dispatch(self, x_TD: torch.Tensor, routing: Routing | SoftRouting) -> ExpertBatch:
        if isinstance(routing, SoftRouting):
            return ExpertBatch.equal_blocks(self.mix_slots(x_TD, routing.dispatch_BLX))
        return ExpertBatch.from_pairs(x_TD, routing.token_index_S, routing.expert_index_S, routing.weight_S,
                                      self.n_experts)

    def combine(self, rows_RD: torch.Tensor, batch: ExpertBatch, routing: Routing | SoftRouting) -> torch.Tensor:
        if isinstance(routing, SoftRouting):
            return self.mix_slot_outputs(rows_RD, routing.combine_BLX)
        return rows_RD  # the rows are the tokens: the kernel summed each token's weighted pairs into its row

    def mix_slots(self, x_TD: torch.Tensor, dispatch_BLX: torch.Tensor) -> torch.Tensor:
        """[E, B * Q, D]: slots X~ = D^T X per sequence (Soft MoE Eq. 1), grouped by expert (slot j of expert e is
        column e * Q + j)."""
        batch, seq_len, n_slots = dispatch_BLX.shape  # X = E * Q: every slot of every expert
        x_BLD = x_TD.reshape(batch, seq_len, -1)
        slots_BXD = torch.einsum("blc,bld->bcd", dispatch_BLX.to(x_BLD.dtype), x_BLD)
        slots_EBQD = slots_BXD.reshape(batch, self.n_experts, n_slots // self.n_experts, -1).transpose(0, 1)
        return slots_EBQD.reshape(self.n_experts, -1, x_BLD.shape[-1])

    def mix_slot_outputs(self, rows_RD: torch.Tensor, combine_BLX: torch.Tensor) -> torch.Tensor:
        """[T, D]: Y = C Y~ per sequence (Soft MoE Eq. 2), from the slot outputs in expert order."""
        batch, seq_len, n_slots = combine_BLX.shape  # X = E * Q: every slot of every expert
        y_EBQD = rows_RD.reshape(self.n_experts, batch, n_slots // self.n_experts, rows_RD.shape[-1])
        y_BXD = y_EBQD.transpose(0, 1).reshape(batch, n_slots, -1)
        return torch.einsum("blc,bcd->bld", combine_BLX.to(y_BXD.dtype), y_BXD).reshape(batch * seq_len, -1)


class RoutedExperts(nn.Module):
    """N' SwiGLU experts of width F: gate_up_proj [E, 2F, D] (gate rows first), down_proj [E, D, F]; their SwiGLU
    clamped at config.swiglu_limit (None: not clamped)."""

    # Each stack's matrices per expert, as a dense SwiGLU FFN holds them: gate_up_proj is gate_proj and up_proj.
    MATRICES_PER_EXPERT = {"gate_up_proj": 2, "down_proj": 1}

    def __init__(self, config: ModelConfig):
        super().__init__()
        n, d, f = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.expert_kernel, self.swiglu_limit = config.expert_kernel, config.swiglu_limit
        self.gate_up_proj = nn.Parameter(torch.empty(n, 2 * f, d))
        self.down_proj = nn.Parameter(torch.empty(n, d, f))

    def forward(self, batch: ExpertBatch) -> torch.Tensor:
        """rows_RD: every pair's expert output, weighted and summed into the row it read (see ExpertBatch)."""
        dtype = autocast_dtype(batch.x_RD)
        batch = dataclasses.replace(batch, x_RD=batch.x_RD.to(dtype))
        return run_experts(self.expert_kernel, batch, self.gate_up_proj.to(dtype), self.down_proj.to(dtype),
                           self.swiglu_limit)


def run_experts(expert_kernel: str, batch: ExpertBatch, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor,
                swiglu_limit: float | None = None) -> torch.Tensor:
    """rows_RD of the batch by the kernel expert_kernel and the tensors allow: the pairwise loops in compiled
    decoding steps, the fused grouped_mm op, or the plain loop over experts (the reference)."""
    x_RD, rows_S, weight_S = batch.x_RD, batch.row_index_S, batch.weight_S
    if use_pairwise(expert_kernel, rows_S, gate_up_EFD.shape[0]):
        return pairwise_experts(x_RD, rows_S, batch.expert_index_S(), weight_S, gate_up_EFD, down_EDF, swiglu_limit)
    if use_grouped_mm(expert_kernel, x_RD, gate_up_EFD):
        return fused_grouped_experts(x_RD, rows_S, batch.offsets_E, weight_S, gate_up_EFD, down_EDF, swiglu_limit)
    return loop_experts(x_RD, rows_S, batch.expert_index_S(), weight_S, gate_up_EFD, down_EDF, swiglu_limit)


def autocast_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matmuls run in here: autocast's when it is on, else x's own."""
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)) (Shazeer 2020): the shared experts, fused into one, and the dense FFN. With a
    `limit` (the shared experts' swiglu_limit) gate and up are clamped first, as kernels.fused.swiglu says."""

    def __init__(self, hidden_size: int, intermediate_size: int, limit: float | None = None):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x), self.limit))


def expert_kernel_summary(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> str:
    """One line on the kernel the routed experts run on this device and dtype, and why when it is not the fused
    op (said once when a command starts)."""
    if not config.moe_layers:
        return "expert kernel: none (no MoE layer)"
    if config.expert_kernel == "loop":
        return "expert kernel: loop over experts (expert_kernel='loop')"
    why_not = grouped_mm_unavailable(device.type, dtype, config.moe_intermediate_size, config.hidden_size)
    if why_not is None:
        return f"expert kernel: fused grouped_mm ({device.type}, {dtype_name(dtype)})"
    if config.expert_kernel == "grouped_mm":
        raise ValueError(f"model.expert_kernel='grouped_mm' cannot run here: {why_not}; use 'auto' or 'loop'")
    return f"expert kernel: loop over experts, the fallback ({why_not})"
