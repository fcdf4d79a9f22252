"""Fast expert computation: sort pairs by expert once, run two torch._grouped_mm calls, scatter back."""

from __future__ import annotations

import torch
import torch.nn.functional as F

GROUPED_MM_ALIGN_BYTES = 16  # torch._grouped_mm needs every row stride to be a multiple of 16 bytes


def grouped_mm_supported(x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Whether torch._grouped_mm exists and accepts these shapes and dtype."""
    if not hasattr(torch, "_grouped_mm") or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    width, hidden = gate_up_EFD.shape[1] // 2, gate_up_EFD.shape[2]
    return all(n * x.element_size() % GROUPED_MM_ALIGN_BYTES == 0 for n in (width, hidden))


def grouped_swiglu(x_SD: torch.Tensor, offsets_E: torch.Tensor, gate_up_EFD: torch.Tensor,
                   down_EDF: torch.Tensor) -> torch.Tensor:
    """SwiGLU of rows already sorted by expert; offsets_E are the int32 cumulative row counts."""
    h_SF = torch._grouped_mm(x_SD, gate_up_EFD.transpose(-2, -1), offs=offsets_E)
    gate_SF, up_SF = h_SF.chunk(2, dim=-1)
    return torch._grouped_mm(F.silu(gate_SF) * up_SF, down_EDF.transpose(-2, -1), offs=offsets_E)


def grouped_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                    weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """Dropless dispatch: out_t = sum over pairs (t, e, w) of w * expert_e(x_t)."""
    order_S = torch.argsort(expert_index_S, stable=True)
    token_sorted_S = token_index_S.index_select(0, order_S)
    tokens_per_expert = torch.bincount(expert_index_S, minlength=gate_up_EFD.shape[0])
    offsets_E = torch.cumsum(tokens_per_expert, 0, dtype=torch.int32)
    y_SD = grouped_swiglu(x_TD.index_select(0, token_sorted_S), offsets_E, gate_up_EFD, down_EDF)
    y_SD = y_SD * weight_S.index_select(0, order_S).unsqueeze(-1).to(y_SD.dtype)
    return torch.zeros_like(x_TD).index_add(0, token_sorted_S, y_SD)


def grouped_experts_on_slots(slots_ESD: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """Each expert e applied to its own equal-sized row block slots_ESD[e] (Soft MoE slots)."""
    n_experts, n_slots, hidden = slots_ESD.shape
    offsets_E = torch.arange(1, n_experts + 1, device=slots_ESD.device, dtype=torch.int32) * n_slots
    y_SD = grouped_swiglu(slots_ESD.reshape(-1, hidden), offsets_E, gate_up_EFD, down_EDF)
    return y_SD.reshape(n_experts, n_slots, -1)
