"""Expert-computation kernels: grouped_mm fast paths, each with its plain-loop reference twin.

Every kernel computes the same thing for an ExpertBatch (pairs sorted by expert, see expert_batch.py):
rows_RD[r] = sum over pairs s reading row r of weight_S[s] * SwiGLU_{expert of s}(x_RD[r]).
"""

from __future__ import annotations

import torch

from dsmoe.kernels.expert_batch import ExpertBatch, sort_by_expert
from dsmoe.kernels.fused import fused_grouped_experts
from dsmoe.kernels.grouped import grouped_experts, grouped_mm_supported
from dsmoe.kernels.loop import loop_experts
from dsmoe.kernels.pairwise import pairwise_experts, use_pairwise


def use_grouped_mm(dispatch: str, x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Resolve the config's dispatch choice for these tensors ("auto" falls back to the loop)."""
    supported = grouped_mm_supported(x, gate_up_EFD)
    if dispatch == "grouped_mm" and not supported:
        raise ValueError(f"dispatch='grouped_mm' is unavailable for dtype {x.dtype} and expert shape "
                         f"{tuple(gate_up_EFD.shape)} (needs torch._grouped_mm, fp32/bf16, 16-byte rows)")
    return dispatch != "loop" and supported


def run_experts(dispatch: str, batch: ExpertBatch, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """rows_RD of the batch (see module docstring), by the kernel the dispatch choice and the tensors allow."""
    x_RD, rows_S, weight_S = batch.x_RD, batch.row_index_S, batch.weight_S
    if use_pairwise(dispatch, rows_S, gate_up_EFD.shape[0]):  # compiled decoding steps
        return pairwise_experts(x_RD, rows_S, batch.expert_index_S(), weight_S, gate_up_EFD, down_EDF)
    if use_grouped_mm(dispatch, x_RD, gate_up_EFD):
        return fused_grouped_experts(x_RD, rows_S, batch.offsets_E, weight_S, gate_up_EFD, down_EDF)
    return loop_experts(x_RD, rows_S, batch.expert_index_S(), weight_S, gate_up_EFD, down_EDF)


__all__ = ["ExpertBatch", "fused_grouped_experts", "grouped_experts", "loop_experts", "pairwise_experts", "run_experts", "sort_by_expert",
           "use_grouped_mm"]
