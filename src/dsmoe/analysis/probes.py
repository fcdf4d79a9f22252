"""Probes that change what the model may use and measure the loss: DeepSeekMoE's Figure 4 (disable the most-routed
experts, tokens choose among the rest) and the removal of the shared experts. Applied from outside, undone after.

A probe's loss is the mean of per-window losses (window_losses), so each change of loss comes with a noise estimate:
its standard error over the same windows scored with and without the change (paired_change)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dsmoe.analysis.trace import moe_routers
from dsmoe.data import val_batches
from dsmoe.routers.base import reachable_experts
from dsmoe.runtime.devices import to_device

WindowLosses = Callable[[nn.Module], np.ndarray]  # a model -> [W] the mean loss of each of W windows, same W each time


@torch.no_grad()
def window_losses(model: nn.Module, domain_tokens: dict[str, np.ndarray], seq_len: int, batch_size: int,
                  max_batches: int) -> np.ndarray:
    """[W] the mean next-token loss of each window the probes score, domain after domain: at most max_batches
    batches of batch_size whole windows per domain, spread over its text (val_batches), so every window predicts
    seq_len tokens and their mean is evaluate_domains' pooled loss over the same windows. In eval mode (the
    model's mode is restored after)."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    losses = []
    for tokens in domain_tokens.values():
        if len(tokens) <= seq_len:  # not one window with a target: evaluate_domains skips it too
            continue
        for inputs_BL, targets_BL in val_batches(tokens, seq_len, batch_size, max_batches):
            logits_BLV = model(to_device(inputs_BL, device)).logits.float()
            loss_BL = F.cross_entropy(logits_BLV.transpose(1, 2), to_device(targets_BL, device), reduction="none")
            losses.append(loss_BL.mean(dim=1).cpu().numpy())
    model.train(was_training)
    if not losses:
        raise ValueError(f"no domain has more than seq_len={seq_len} tokens: no window to score")
    return np.concatenate(losses).astype(np.float64)


def paired_change(before_W: np.ndarray, after_W: np.ndarray) -> tuple[float, float]:
    """The change of the mean loss, and its standard error over the windows (the spread of the per-window
    changes / sqrt(W), windows taken as independent samples); NaN error for a single window."""
    change_W = after_W - before_W
    error = float(change_W.std(ddof=1) / math.sqrt(len(change_W))) if len(change_W) > 1 else math.nan
    return float(change_W.mean()), error


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


def expert_disabling_curve(model: nn.Module, loads: dict[int, np.ndarray], evaluate: WindowLosses,
                           ks: Sequence[int] = range(5)) -> list[dict]:
    """DeepSeekMoE Sec. 4.5, Fig. 4: for each k of `ks` (increasing, from 0), {"k", "share" (k / E), "loss", "rise",
    "rise_se", "windows", "disabled": {layer: experts}}: the mean of the window losses `evaluate` gives with each MoE
    layer's k most-routed experts (by `loads`, layer -> tokens per expert) disabled, its rise over the first point's,
    the standard error of that rise (paired_change) and the number of windows. The curve stops before a k that could
    leave a token fewer than top_k experts; the last point then says so under "stopped". Layers whose router
    cannot leave experts out (hash-routed ones: a token-id table chooses) keep every expert; the first point lists
    them under "kept"."""
    config = model.config
    routers = moe_routers(model)
    kept = sorted(layer for layer in loads if not routers[layer].can_disable_experts)
    loads = {layer: load_E for layer, load_E in loads.items() if layer not in kept}
    if not loads:
        raise ValueError(f"no MoE layer's router can disable experts (layers {kept} choose by a token-id table)")
    points: list[dict] = []
    first_W = None
    for k in tqdm(ks, desc="disabling experts", unit="k"):
        disabled = {layer: most_routed_experts(load_E, k) for layer, load_E in loads.items()}
        short = [layer for layer, experts in disabled.items()
                 if reachable_experts(config, experts) < config.n_activated_experts]
        if short:
            points[-1]["stopped"] = (f"k={k} could leave a token of layers {short} fewer than n_activated_experts="
                                     f"{config.n_activated_experts} of n_routed_experts={config.n_routed_experts}")
            break
        with experts_disabled(model, disabled):
            losses_W = evaluate(model)
        first_W = losses_W if first_W is None else first_W
        rise, rise_se = paired_change(first_W, losses_W)
        points.append({"k": k, "share": k / config.n_routed_experts, "loss": float(losses_W.mean()), "rise": rise,
                       "rise_se": rise_se, "windows": len(losses_W),
                       "disabled": {str(layer): experts for layer, experts in disabled.items()}})
    if kept:
        points[0]["kept"] = (f"layers {kept} keep every expert: their router chooses by a token-id table "
                             "(n_hash_layers), not by scores")
    return points


def shared_expert_probe(model: nn.Module, evaluate: WindowLosses) -> dict:
    """The loss with and without the shared experts, the jump and its standard error (paired_change)."""
    with_W = evaluate(model)
    with shared_experts_removed(model):
        without_W = evaluate(model)
    jump, jump_se = paired_change(with_W, without_W)
    return {"loss": float(with_W.mean()), "loss_without_shared": float(without_W.mean()), "jump": jump,
            "jump_se": jump_se, "windows": len(with_W)}
