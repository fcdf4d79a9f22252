"""What the model's forward returns: logits, losses and routing statistics, never global state."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dsmoe.model.kv_cache import KVCache
from dsmoe.routers import RouterStats

IGNORE_INDEX = -100  # label value left out of every cross-entropy


@dataclass
class ModelOutput:
    """logits [B, L, V]; lm_loss (cross-entropy, when labels are given); aux_losses summed over MoE
    layers by name, plus "mtp" = lambda * mean over depths of the MTP cross-entropies when the MTP modules
    ran with labels; loss = lm_loss + sum(aux_losses) (the training objective, when labels are given);
    router_stats[i] for the i-th MoE layer of the main model (layer index in moe_layers[i]); the KV cache
    if one was used; mtp_logits[k - 1] [B, L - k, V]: MTP depth k's logits, position i predicting token
    i + k + 1 (DeepSeek-V3 Sec. 2.2), empty unless the MTP modules ran; hidden_BLD [B, L, D]: the final-norm
    output the LM head reads, which is what MTP depth 1 takes (speculative drafting feeds it on)."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    router_stats: list[RouterStats] = field(default_factory=list)
    moe_layers: list[int] = field(default_factory=list)
    cache: KVCache | None = None
    mtp_logits: list[torch.Tensor] = field(default_factory=list)
    hidden_BLD: torch.Tensor | None = None


def add_losses(total: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    """Sum `new` into `total` by name."""
    for name, value in new.items():
        total[name] = total[name] + value if name in total else value
