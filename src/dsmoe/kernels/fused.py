"""The whole routed-expert computation as one autograd Function: gather, SwiGLU experts, weighted scatter.

Autograd over the plain ops would keep the K-fold gathered input, both projections, the SwiGLU
product and the weighted output alive for backward. This Function keeps only the gate/up
projection h = x W1^T ([S, 2F], what the SwiGLU derivative needs) and recomputes the rest:
the gather of x (cheap memory traffic) and silu(gate) * up (elementwise). The routing weight
is folded into the SwiGLU output before the down projection, w * (a W2^T) = (w * a) W2^T, so
no [S, D] product is materialised, and its gradient is <g W2, a> on [S, F] rows instead of
<g, y> on [S, D] rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def swiglu_from_gate_up(h_SF2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gate, up, silu(gate) * up) from the fused gate/up projection (gate columns first)."""
    gate_SF, up_SF = h_SF2.chunk(2, dim=-1)
    return gate_SF, up_SF, F.silu(gate_SF) * up_SF


class FusedGroupedExperts(torch.autograd.Function):
    """out_TD = scatter_add over sorted pairs s of w_s * SwiGLU_{e_s}(x_{t_s}); pairs sorted by expert."""

    @staticmethod
    def forward(ctx, x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF):
        x_SD = x_TD.index_select(0, token_sorted_S)
        h_SF2 = torch._grouped_mm(x_SD, gate_up_EFD.transpose(-2, -1), offs=offsets_E)
        del x_SD  # recomputed in backward: one gather costs less than keeping K copies of x
        act_SF = swiglu_from_gate_up(h_SF2)[2].mul_(weight_sorted_S.unsqueeze(-1))
        y_SD = torch._grouped_mm(act_SF, down_EDF.transpose(-2, -1), offs=offsets_E)
        ctx.save_for_backward(x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, h_SF2)
        return torch.zeros_like(x_TD).index_add_(0, token_sorted_S, y_SD)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out_TD):
        x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, h_SF2 = ctx.saved_tensors
        w_S1 = weight_sorted_S.unsqueeze(-1)
        grad_y_SD = grad_out_TD.index_select(0, token_sorted_S)  # also makes an expanded gradient contiguous
        gate_SF, up_SF, act_SF = swiglu_from_gate_up(h_SF2)
        grad_act_SF = torch._grouped_mm(grad_y_SD, down_EDF, offs=offsets_E)  # gradient w.r.t. w * act
        grad_weight_S = (grad_act_SF * act_SF).sum(-1)
        grad_down_EDF = torch._grouped_mm(grad_y_SD.t(), act_SF.mul_(w_S1), offs=offsets_E)
        del grad_y_SD, act_SF
        grad_act_SF.mul_(w_S1)
        sigmoid_SF = torch.sigmoid(gate_SF)
        grad_up_SF = grad_act_SF * gate_SF * sigmoid_SF
        grad_gate_SF = grad_act_SF.mul_(up_SF).mul_(sigmoid_SF * (1 + gate_SF * (1 - sigmoid_SF)))  # silu'
        grad_h_SF2 = torch.cat((grad_gate_SF, grad_up_SF), dim=-1)
        del grad_up_SF, grad_gate_SF, sigmoid_SF
        x_SD = x_TD.index_select(0, token_sorted_S)
        grad_gate_up_EFD = torch._grouped_mm(grad_h_SF2.t(), x_SD, offs=offsets_E)
        del x_SD
        grad_x_SD = torch._grouped_mm(grad_h_SF2, gate_up_EFD, offs=offsets_E)
        grad_x_TD = torch.zeros_like(x_TD).index_add_(0, token_sorted_S, grad_x_SD)
        return grad_x_TD, None, None, grad_weight_S.to(weight_sorted_S.dtype), grad_gate_up_EFD, grad_down_EDF
