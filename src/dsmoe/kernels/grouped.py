"""Fast expert computation: sort pairs by expert once, run the experts as grouped GEMMs, scatter back."""

from __future__ import annotations

import functools

import torch

from dsmoe.kernels.fused import fused_grouped_experts, swiglu_from_gate_up

GROUPED_MM_ALIGN_BYTES = 16  # torch._grouped_mm needs every row stride to be a multiple of 16 bytes


@functools.cache
def grouped_mm_runs_on(device_type: str, dtype: torch.dtype) -> bool:
    """Whether this torch build runs torch._grouped_mm on this device and dtype (older builds: CUDA only)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    try:
        a, b = torch.ones(8, 8, device=device_type, dtype=dtype), torch.ones(2, 8, 8, device=device_type, dtype=dtype)
        torch._grouped_mm(a, b, offs=torch.tensor([4, 8], device=device_type, dtype=torch.int32))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def grouped_mm_supported(x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Whether torch._grouped_mm exists and accepts these shapes and dtype."""
    if x.dtype not in (torch.float32, torch.bfloat16):
        return False
    # the probe cannot run inside a torch.compile trace; there the op's existence has to do
    runs = hasattr(torch, "_grouped_mm") if torch.compiler.is_compiling() else grouped_mm_runs_on(x.device.type, x.dtype)
    if not runs:
        return False
    width, hidden = gate_up_EFD.shape[1] // 2, gate_up_EFD.shape[2]
    return all(n * x.element_size() % GROUPED_MM_ALIGN_BYTES == 0 for n in (width, hidden))


def grouped_swiglu(x_SD: torch.Tensor, offsets_E: torch.Tensor, gate_up_EFD: torch.Tensor,
                   down_EDF: torch.Tensor) -> torch.Tensor:
    """SwiGLU of rows already sorted by expert; offsets_E are the int32 cumulative row counts."""
    h_SF2 = torch._grouped_mm(x_SD, gate_up_EFD.transpose(-2, -1), offs=offsets_E)
    return torch._grouped_mm(swiglu_from_gate_up(h_SF2)[2], down_EDF.transpose(-2, -1), offs=offsets_E)


def sort_by_expert(expert_index_S: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order_S putting pairs in expert order, int32 cumulative pair counts per expert for grouped_mm)."""
    order_S = torch.argsort(expert_index_S, stable=True)
    pairs_per_expert = torch.zeros(n_experts, dtype=torch.int32, device=expert_index_S.device)
    pairs_per_expert.scatter_add_(0, expert_index_S, torch.ones_like(expert_index_S, dtype=torch.int32))
    return order_S, torch.cumsum(pairs_per_expert, 0, dtype=torch.int32)


def grouped_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                    weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """Dropless dispatch: out_t = sum over pairs (t, e, w) of w * expert_e(x_t)."""
    order_S, offsets_E = sort_by_expert(expert_index_S, gate_up_EFD.shape[0])
    return fused_grouped_experts(x_TD, token_index_S.index_select(0, order_S), offsets_E,
                                 weight_S.index_select(0, order_S), gate_up_EFD, down_EDF)


def grouped_experts_on_slots(slots_ESD: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """Each expert e applied to its own equal-sized row block slots_ESD[e] (Soft MoE slots)."""
    n_experts, n_slots, hidden = slots_ESD.shape
    offsets_E = torch.arange(1, n_experts + 1, device=slots_ESD.device, dtype=torch.int32) * n_slots
    y_SD = grouped_swiglu(slots_ESD.reshape(-1, hidden), offsets_E, gate_up_EFD, down_EDF)
    return y_SD.reshape(n_experts, n_slots, -1)
