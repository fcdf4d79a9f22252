"""Fast expert computation: pairs sorted by expert, the experts run as grouped GEMMs, outputs scattered back."""

from __future__ import annotations

import functools

import torch

from dsmoe.kernels.expert_batch import ExpertBatch
from dsmoe.kernels.fused import fused_grouped_experts

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


def grouped_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                    weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """Dropless dispatch of pairs in any order: out_t = sum over pairs (t, e, w) of w * expert_e(x_t)."""
    batch = ExpertBatch.from_pairs(x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD.shape[0])
    return fused_grouped_experts(batch.x_RD, batch.row_index_S, batch.offsets_E, batch.weight_S, gate_up_EFD,
                                 down_EDF)
