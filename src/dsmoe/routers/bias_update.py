"""The once-per-optimizer-step update of the aux-loss-free expert bias (DeepSeek-V3 Sec. 2.1.2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from dsmoe.routers.sigmoid_topk import SigmoidTopKRouter


def update_expert_biases(model: nn.Module) -> None:
    """Apply the pending bias update of every sigmoid_topk router in `model`."""
    for module in model.modules():
        if isinstance(module, SigmoidTopKRouter):
            module.update_bias()


def install_bias_update(optimizer: torch.optim.Optimizer, model: nn.Module) -> RemovableHandle:
    """Register an optimizer step post-hook that updates the expert biases after each step."""
    return optimizer.register_step_post_hook(lambda *_: update_expert_biases(model))
