"""The optimizers (AdamW, or Muon for the hidden matrices with AdamW for the rest) and the learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dsmoe.config.train_config import TrainConfig
from dsmoe.train.muon import MuonWithAdamW, expert_stacks, uses_muon
from dsmoe.train.stacked_muon import StackedMuon


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (and stacked expert matrices) only.

    Norm gains are scale parameters whose decay would fight the normalisation, embeddings are lookup
    tables most of whose rows get no gradient in a step, so neither is decayed (as in GPT-2/nanoGPT
    and DeepSeek's practice); tied weights appear once.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.dim() >= 2 and not name.startswith("embed_tokens")
        (decay if is_matrix else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """cfg.optimizer: "adamw", or "muon" (dsmoe.train.muon: Muon at cfg.muon_lr on the hidden matrices and, with
    cfg.muon_experts, the routed experts' stacks; AdamW at cfg.lr on the rest; all decayed by cfg.weight_decay)."""
    if cfg.optimizer == "adamw":
        return _adamw(parameter_groups(model, cfg.weight_decay), cfg)
    hidden = [param for name, param in model.named_parameters() if param.requires_grad and uses_muon(name, param)]
    stacks = expert_stacks(model) if cfg.muon_experts else {}
    chosen = {id(param) for param in hidden} | {id(param) for params in stacks.values() for param in params}
    others = [{**group, "params": [param for param in group["params"] if id(param) not in chosen]}
              for group in parameter_groups(model, cfg.weight_decay)]
    settings = dict(lr=cfg.muon_lr, weight_decay=cfg.weight_decay, momentum=cfg.muon_momentum)
    muon = torch.optim.Muon(hidden, **settings)
    stacked = StackedMuon([{"params": params, "row_blocks": blocks} for blocks, params in sorted(stacks.items())],
                          **settings) if stacks else None
    return MuonWithAdamW(muon, _adamw([group for group in others if group["params"]], cfg), stacked)


def _adamw(groups: list[dict], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (one pass over each tensor: on a 2-core CPU 4 ms a step for the tiny demo
    model's 5.4M parameters, against 25 ms for the multi-tensor path) where every parameter is a plain tensor;
    the multi-tensor path for sharded (DTensor) ones."""
    params = [param for group in groups for param in group["params"]]
    fused = all(type(param) is nn.Parameter and param.device.type in ("cpu", "cuda") for param in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             **({"fused": True} if fused else {"foreach": True}))


def lr_multiplier(step: float, cfg: TrainConfig) -> float:
    """Learning rate at schedule position `step` (optimizer steps, 0-based; fractional when a time budget drives
    the schedule, see dsmoe.train.progress) as a fraction of cfg.lr."""
    if step < cfg.warmup_steps:
        return min(1.0, (step + 1) / cfg.warmup_steps)  # a fractional position may pass warmup_steps - 1
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":  # DeepSeekMoE Sec. 4.1.2: x0.316 at 80% and at 90% of training
        return 0.316 ** ((step >= 0.8 * cfg.steps) + (step >= 0.9 * cfg.steps))
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    position: Callable[[int], float] = lambda step: step) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule at `position(steps taken)`: the steps themselves, or TrainingProgress.position."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(position(step), cfg))


def load_optimizer_state(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                         optimizer_state: dict, scheduler_state: dict) -> None:
    """Load a checkpoint's AdamW moments and schedule step into an optimizer and scheduler built from the config,
    keeping the config's settings (a resume may change the AdamW values, the peak lr and the schedule:
    dsmoe.train.resume): each group's lr becomes the config's schedule at the restored step. With the config the
    checkpoint was saved with, this is exactly the checkpoint's state.

    Call it once the schedule's position can be computed (TrainingProgress restored)."""
    settings = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    base_lrs = list(scheduler.base_lrs)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    scheduler.base_lrs = base_lrs
    for group, values, base_lr, lr_lambda in zip(optimizer.param_groups, settings, base_lrs, scheduler.lr_lambdas):
        group.update(values, lr=base_lr * lr_lambda(scheduler.last_epoch))  # as LambdaLR.step computes it
