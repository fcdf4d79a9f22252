"""Global gradient-norm clipping over ranks whose gradients are disjoint shards of the model's."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor


def local_gradients(model: nn.Module) -> list[torch.Tensor]:
    """This rank's piece of every gradient. After parallelize each element of the model's gradients lives on
    exactly one rank (FSDP2 shards over the world or, for a block of experts, over its dp holders, and ep ranks
    hold different experts), so squared norms summed over ranks are the full model's."""
    grads = [param.grad for param in model.parameters() if param.grad is not None]
    return [grad.to_local() if isinstance(grad, DTensor) else grad for grad in grads]


@torch.no_grad()
def clip_grad_norm(model: nn.Module, max_norm: float, group: dist.ProcessGroup | None = None) -> float:
    """torch.nn.utils.clip_grad_norm_ over the whole parallel model: the 2-norm of all gradients on all ranks of
    `group` (the default: every rank), every shard scaled by min(1, max_norm / (norm + 1e-6)); returns the norm."""
    grads = local_gradients(model)
    squares = torch.stack([grad.float().square().sum() for grad in grads]).sum() if grads else torch.zeros(())
    dist.all_reduce(squares, group=group)
    norm = float(squares.sqrt())
    scale = min(1.0, max_norm / (norm + 1e-6))  # exactly clip_grad_norm_'s clamped coefficient
    if math.isfinite(norm) and scale < 1.0:
        torch._foreach_mul_(grads, scale)
    return norm
