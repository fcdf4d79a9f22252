"""Probes that change what the model may use and measure the loss: DeepSeekMoE's Figure 4 (disable the most-routed
experts, tokens choose among the rest) and the removal of the shared experts. Applied from outside, undone after."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dsmoe.analysis.trace import moe_routers
from dsmoe.routers.base import reachable_experts


@contextmanager
def experts_disabled(model: nn.Module, per_layer: dict[int, list[int]]) -> Iterator[None]:
    """Within the block, MoE layer l's router never chooses the experts per_layer[l] (Router.disable_experts); after
    it, even on an error, each router disables again what it disabled before (usually nothing)."""
    routers = moe_routers(model)
    unknown = sorted(set(per_layer) - set(routers))
    if unknown:
        raise ValueError(f"layers {unknown} are not MoE layers (the MoE layers are {sorted(routers)})")
    before = {layer: disabled_experts(routers[layer]) for layer in per_layer}
    try:
        for layer, experts in per_layer.items():
            routers[layer].disable_experts(list(experts))
        yield
    finally:
        for layer, experts in before.items():
            routers[layer].disable_experts(experts)


def disabled_experts(router: nn.Module) -> list[int]:
    return [] if router.disabled_E is None else router.disabled_E.nonzero().flatten().tolist()


@contextmanager
def shared_experts_removed(model: nn.Module) -> Iterator[None]:
    """Within the block, every MoE layer's shared experts output zeros (so their gated term is zero too)."""
    shared = [block.ffn.shared_experts for block in model.layers
              if block.is_moe and block.ffn.shared_experts is not None]
    if not shared:
        raise ValueError(f"the model has no shared experts to remove (n_shared_experts="
                         f"{model.config.n_shared_experts}, or no MoE layer)")
    handles = [module.register_forward_hook(lambda module, args, output: torch.zeros_like(output))
               for module in shared]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def most_routed_experts(load_E: np.ndarray, k: int) -> list[int]:
    """The k experts with the highest load, highest first (ties: the lower index)."""
    return np.argsort(-np.asarray(load_E), kind="stable")[:k].tolist()


def disabling_steps(n_experts: list[int], steps: int = 4) -> list[list[int]]:
    """For runs with these numbers of routed experts, the k of each run at the shares 0, 1/E_min, ..., steps/E_min
    of its experts (E_min the fewest): DeepSeekMoE Fig. 4 compares models at equal shares of disabled experts."""
    fewest = min(n_experts)
    return [[round(step * experts / fewest) for step in range(steps + 1)] for experts in n_experts]


def expert_disabling_curve(model: nn.Module, loads: dict[int, np.ndarray], evaluate: Callable[[nn.Module], float],
                           ks: Sequence[int] = range(5)) -> list[dict]:
    """DeepSeekMoE Sec. 4.5, Fig. 4: for each k of `ks` (increasing), {"k", "share" (k / E), "loss", "disabled":
    {layer: experts}}, the loss `evaluate` gives with each MoE layer's k most-routed experts (by `loads`, layer ->
    tokens per expert) disabled. The curve stops before a k that could leave a token fewer than top_k experts; the
    last point then says so under "stopped"."""
    config = model.config
    points: list[dict] = []
    for k in tqdm(ks, desc="disabling experts", unit="k"):
        disabled = {layer: most_routed_experts(load_E, k) for layer, load_E in loads.items()}
        short = [layer for layer, experts in disabled.items()
                 if reachable_experts(config, experts) < config.n_activated_experts]
        if short:
            points[-1]["stopped"] = (f"k={k} could leave a token of layers {short} fewer than n_activated_experts="
                                     f"{config.n_activated_experts} of n_routed_experts={config.n_routed_experts}")
            break
        with experts_disabled(model, disabled):
            points.append({"k": k, "share": k / config.n_routed_experts, "loss": float(evaluate(model)),
                           "disabled": {str(l): e for l, e in disabled.items()}})
    return points


def shared_expert_probe(model: nn.Module, evaluate: Callable[[nn.Module], float]) -> dict:
    """The loss with and without the shared experts, and the jump."""
    loss = float(evaluate(model))
    with shared_experts_removed(model):
        without = float(evaluate(model))
    return {"loss": loss, "loss_without_shared": without, "jump": without - loss}
