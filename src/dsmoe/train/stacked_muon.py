"""Muon on the stacked routed-expert weights: every expert's matrices orthogonalised on their own, in one batch.

torch.optim.Muon takes 2-D matrices only, but a routed-expert stack [E, rows, cols] is E hidden matrices that a
dense FFN or a shared expert holds as nn.Linear weights. StackedMuon gives each of them torch.optim.Muon's update
(Jordan et al. 2024, as torch implements it: momentum with Nesterov, 5 quintic Newton-Schulz steps in bfloat16 on
the matrix scaled to norm 1, lr x sqrt(max(1, rows / cols)), decoupled weight decay), the E matrices of a stack in
one batched Newton-Schulz. A group's `row_blocks` cuts each expert's rows into that many matrices: 2 for
gate_up_proj [E, 2F, D], whose gate and up halves are a SwiGLU FFN's separate gate_proj and up_proj.
"""

from __future__ import annotations

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # torch.optim.Muon's defaults (Jordan et al.'s quintic)
NS_STEPS = 5
EPS = 1e-7


def orthogonalise(matrices: torch.Tensor, steps: int = NS_STEPS, eps: float = EPS) -> torch.Tensor:
    """Newton-Schulz on each matrix of a batch [n, rows, cols], as torch.optim.Muon runs it on one matrix."""
    a, b, c = NS_COEFFICIENTS
    x = matrices.bfloat16()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.mT
        polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, polynomial, x, beta=a)
    return x.mT if tall else x


class StackedMuon(torch.optim.Optimizer):
    """Muon for 3-D stacks of matrices; each param group says how many matrices an expert's rows hold."""

    def __init__(self, groups: list[dict], lr: float, weight_decay: float, momentum: float):
        for group in groups:
            for param in group["params"]:
                if param.dim() != 3 or param.size(1) % group["row_blocks"]:
                    raise ValueError(f"StackedMuon takes [E, rows, cols] stacks whose rows split into "
                                     f"row_blocks={group['row_blocks']}, got {tuple(param.shape)}")
        super().__init__(groups, dict(lr=lr, weight_decay=weight_decay, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, blocks = group["lr"], group["momentum"], group["row_blocks"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                buffer = self.state[param].setdefault("momentum_buffer", torch.zeros_like(param))
                buffer.lerp_(param.grad, 1 - momentum)
                update = param.grad.lerp(buffer, momentum)  # Nesterov
                experts, rows, cols = param.shape
                matrices = update.reshape(experts * blocks, rows // blocks, cols)
                ortho = orthogonalise(matrices).reshape(param.shape)
                param.mul_(1 - lr * group["weight_decay"])
                param.add_(ortho, alpha=-lr * math.sqrt(max(1.0, rows / blocks / cols)))
        return loss
