"""What the model's forward returns: logits, losses and routing statistics, never global state."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dsmoe.model.kv_cache import KVCache
from dsmoe.routers import RouterStats


@dataclass
class ModelOutput:
    """logits [B, L, V]; lm_loss (cross-entropy, when labels are given); aux_losses summed over MoE
    layers by name; loss = lm_loss + sum(aux_losses) (the training objective, when labels are given);
    router_stats[i] for the i-th MoE layer (layer index in moe_layers[i]); the KV cache if one was used."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    router_stats: list[RouterStats] = field(default_factory=list)
    moe_layers: list[int] = field(default_factory=list)
    cache: KVCache | None = None
