"""Router state updated once per optimizer step (DeepSeek-V3 Sec. 2.1.2's aux-loss-free bias), applied by an
optimizer hook from outside the model, which is also where data-parallel statistics are summed over ranks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from dsmoe.routers.base import Router

ReduceSum = Callable[[torch.Tensor], object]  # sums a tensor over ranks in place, e.g. torch.distributed.all_reduce


def routers_of(model: nn.Module) -> list[Router]:
    return [module for module in model.modules() if isinstance(module, Router)]


@torch.no_grad()
def apply_router_updates(model: nn.Module, reduce_sum: ReduceSum | None = None) -> None:
    """Every router's pending update, its statistics first summed over ranks by `reduce_sum` when given."""
    routers = routers_of(model)
    if reduce_sum is not None:
        for router in routers:
            for statistic in router.pending_statistics():
                reduce_sum(statistic)
    for router in routers:
        router.apply_step_update()


def discard_router_updates(model: nn.Module) -> None:
    """Forget what the routers accumulated for an optimizer step that was skipped."""
    for router in routers_of(model):
        router.discard_step()


def install_router_updates(optimizer: torch.optim.Optimizer, model: nn.Module,
                           reduce_sum: ReduceSum | None = None) -> RemovableHandle:
    """Register an optimizer step post-hook that applies the routers' updates after each step. Data-parallel
    training passes the collective that sums over its ranks (the model itself never communicates)."""
    return optimizer.register_step_post_hook(lambda *_: apply_router_updates(model, reduce_sum))
