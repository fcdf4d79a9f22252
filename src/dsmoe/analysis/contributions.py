"""How much each MoE layer's output comes from its shared experts and how much from its routed ones (DeepSeekMoE
Eq. 9: h = u + sum_shared FFN_i(u) + sum_routed g_i FFN_i(u)), measured by hooks on the layer from outside."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch import nn

from dsmoe.analysis.hooks import hooked


@torch.no_grad()
def shared_routed_norms(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, dict]:
    """{layer: {"shared_norm", "routed_norm", "ratio", "tokens"}}: over the tokens of `batches` ([B, L] ids), the
    mean L2 norm of the shared term (gated, if the layer gates it) and of the routed term, and the mean per-token
    ratio shared / routed. Layers without shared experts are left out."""
    layers = {index: block.ffn for index, block in enumerate(model.layers)
              if block.is_moe and block.ffn.shared_experts is not None}
    device = next(model.parameters()).device
    sums = {index: torch.zeros(3, dtype=torch.float64, device=device) for index in layers}
    tokens = dict.fromkeys(layers, 0)

    def measure(moe: nn.Module, args: tuple, output: tuple, index: int) -> None:
        shared_TD = moe.shared_output(args[0]).flatten(0, -2).double()
        routed_TD = output[0].flatten(0, -2).double() - shared_TD  # the MoE's output is shared + routed
        shared_T, routed_T = shared_TD.norm(dim=-1), routed_TD.norm(dim=-1)
        sums[index] += torch.stack([shared_T.sum(), routed_T.sum(), (shared_T / routed_T.clamp_min(1e-12)).sum()])
        tokens[index] += len(shared_T)

    handles = [moe.register_forward_hook(functools.partial(measure, index=index)) for index, moe in layers.items()]
    with hooked(model, handles):
        for ids_BL in batches:
            model(ids_BL.to(device))
    return {str(index): {"shared_norm": float(sums[index][0] / max(tokens[index], 1)),
                         "routed_norm": float(sums[index][1] / max(tokens[index], 1)),
                         "ratio": float(sums[index][2] / max(tokens[index], 1)), "tokens": tokens[index]}
            for index in layers}
