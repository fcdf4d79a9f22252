"""Expert-computation kernels: grouped_mm fast paths, each with its plain-loop reference twin."""

from __future__ import annotations

import torch

from dsmoe.kernels.grouped import grouped_experts, grouped_experts_on_slots, grouped_mm_supported
from dsmoe.kernels.loop import loop_experts, loop_experts_on_slots
from dsmoe.kernels.pairwise import pairwise_experts, use_pairwise


def use_grouped_mm(dispatch: str, x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Resolve the config's dispatch choice for these tensors ("auto" falls back to the loop)."""
    supported = grouped_mm_supported(x, gate_up_EFD)
    if dispatch == "grouped_mm" and not supported:
        raise ValueError(f"dispatch='grouped_mm' is unavailable for dtype {x.dtype} and expert shape "
                         f"{tuple(gate_up_EFD.shape)} (needs torch._grouped_mm, fp32/bf16, 16-byte rows)")
    return dispatch != "loop" and supported


def run_experts(dispatch: str, x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD, down_EDF):
    """Weighted sum of expert outputs over token-expert pairs."""
    if use_pairwise(dispatch, expert_index_S, gate_up_EFD.shape[0]):  # compiled decoding steps
        return pairwise_experts(x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD, down_EDF)
    kernel = grouped_experts if use_grouped_mm(dispatch, x_TD, gate_up_EFD) else loop_experts
    return kernel(x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD, down_EDF)


def run_experts_on_slots(dispatch: str, slots_ESD, gate_up_EFD, down_EDF):
    """Each expert applied to its own block of slots."""
    kernel = grouped_experts_on_slots if use_grouped_mm(dispatch, slots_ESD, gate_up_EFD) else loop_experts_on_slots
    return kernel(slots_ESD, gate_up_EFD, down_EDF)


__all__ = ["grouped_experts", "loop_experts", "pairwise_experts", "run_experts", "run_experts_on_slots",
           "use_grouped_mm"]
