"""Reference expert computation: a plain loop over experts, one dense SwiGLU per expert."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expert_swiglu(x_ND: torch.Tensor, gate_up_FD: torch.Tensor, down_DF: torch.Tensor) -> torch.Tensor:
    """One SwiGLU expert, down(silu(gate(x)) * up(x)), with gate and up fused as [2F, D]."""
    gate_NF, up_NF = F.linear(x_ND, gate_up_FD).chunk(2, dim=-1)
    return F.linear(F.silu(gate_NF) * up_NF, down_DF)


def loop_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                 weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor) -> torch.Tensor:
    """out_t = sum over pairs (t, e, w) of w * expert_e(x_t), one expert at a time (pairs in any order)."""
    out_TD = torch.zeros_like(x_TD)
    # unbind, not gate_up_EFD[expert]: indexing would give each expert a full-size [E, ...] zero gradient
    gate_ups_FD, downs_DF = gate_up_EFD.unbind(0), down_EDF.unbind(0)
    for expert in expert_index_S.unique().tolist():  # only the experts that received pairs
        selected = expert_index_S == expert
        tokens = token_index_S[selected]
        y_ND = expert_swiglu(x_TD[tokens], gate_ups_FD[expert], downs_DF[expert])
        out_TD = out_TD.index_add(0, tokens, y_ND * weight_S[selected].unsqueeze(-1).to(y_ND.dtype))
    return out_TD
