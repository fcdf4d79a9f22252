"""The one weight initialisation of dsmoe models.

| parameter                                                 | init                                                 |
|-----------------------------------------------------------|------------------------------------------------------|
| embeddings, attention and FFN projections                 | N(0, init_std)                                       |
| Linear biases (attention_bias, o_proj_bias)               | 0                                                    |
| stacked routed-expert weights, router gate weights        | N(0, init_std)                                       |
| noisy_topk gate and noise weights W_g, W_noise            | 0 (equal loads at start: Shazeer et al. 2017 App. A) |
| soft_moe_normalise's logit scale                          | 1                                                    |
| RMSNorm weights                                           | 1                                                    |
| sigmoid_topk and sqrtsoftplus_topk expert bias (a buffer) | 0                                                    |
| hash layers' token-id table tid2eid (a buffer)            | balanced, seeded by its layer (routers/hash_gate.py) |

Each router's rows are its own `init_weights` method (a router with new state extends it in its own file).
"""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.model.moe import RoutedExperts
from dsmoe.model.norm import RMSNorm
from dsmoe.routers import Router


@torch.no_grad()
def init_weights(model: nn.Module, std: float) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RoutedExperts):
            nn.init.normal_(module.gate_up_proj, std=std)
            nn.init.normal_(module.down_proj, std=std)
        elif isinstance(module, Router):
            module.init_weights(std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
