"""Expert computation pair by pair, for decoding under torch.compile: each token-expert pair's SwiGLU written as
gather-multiply-sums, which inductor fuses into reduction loops that read the expert weights where they lie.

Decoding routes a few tokens, so each expert gets a row or two and a grouped GEMM streams every routed expert's
weights through tiny matrix products, bound by per-call overhead (about 45 us per 2-row product of a 256 KB
weight on a 2-core CPU, a sixth of its memory bandwidth). Fused loops over (pair, output, input) read each weight
once per pair with no intermediate [S, 2F, D] gather; the dispatcher sorts pairs by expert, so an expert's
consecutive pairs find its weights in cache (any order gives the same result). Eagerly the same code would
materialise those gathers, so it is used only while compiling, without autograd, for fewer than
PAIRWISE_MAX_PAIRS_PER_EXPERT pairs per expert on average.
"""

from __future__ import annotations

import torch
from torch.fx.experimental.symbolic_shapes import guard_or_false

from dsmoe.kernels.fused import swiglu_from_gate_up

PAIRWISE_MAX_PAIRS_PER_EXPERT = 4  # at 4 pairs per expert the compiled loops tie the grouped GEMMs (2-core CPU)


def use_pairwise(expert_kernel: str, expert_index_S: torch.Tensor, n_experts: int) -> bool:
    """Whether this call is a compiled inference step with few enough pairs for the pairwise loops. A pair count
    that depends on the data (a padded batch packs its real tokens) cannot be bounded, and takes the grouped path."""
    return (expert_kernel != "loop" and torch.compiler.is_compiling() and not torch.is_grad_enabled()
            and guard_or_false(expert_index_S.shape[0] < PAIRWISE_MAX_PAIRS_PER_EXPERT * n_experts))


def pairwise_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                     weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor,
                     swiglu_limit: float | None = None) -> torch.Tensor:
    """out_t = sum over pairs (t, e, w) of w * down_e(silu(gate_e x_t) * up_e x_t), one pair at a time (the SwiGLU
    clamped at swiglu_limit, see fused.swiglu)."""
    x_SD = x_TD.index_select(0, token_index_S)
    h_SF2 = (x_SD.unsqueeze(1) * gate_up_EFD[expert_index_S]).sum(-1)
    act_SF = swiglu_from_gate_up(h_SF2, swiglu_limit) * weight_S.unsqueeze(-1).to(h_SF2.dtype)
    y_SD = (act_SF.unsqueeze(1) * down_EDF[expert_index_S]).sum(-1)
    return torch.zeros_like(x_TD).index_add_(0, token_index_S, y_SD)
