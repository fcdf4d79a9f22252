"""One pre-norm decoder block: x + Attn(Norm(x)), then + FFN(Norm(x)) with FFN dense or MoE."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.attention import Attention
from dsmoe.model.ffn import SwiGLU
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.mla import MultiHeadLatentAttention
from dsmoe.model.moe import MoE
from dsmoe.model.norm import RMSNorm
from dsmoe.routers import RouterStats

ATTENTIONS = {"mha": Attention, "mla": MultiHeadLatentAttention}


class DecoderBlock(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.is_moe = layer_idx in config.moe_layers
        self.attn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.attn = ATTENTIONS[config.attention](config, layer_idx)
        self.ffn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.ffn = MoE(config) if self.is_moe else SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(self, x_BLD: torch.Tensor, cos_LD: torch.Tensor, sin_LD: torch.Tensor, token_ids_BL: torch.Tensor,
                cache: KVCache | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], RouterStats | None]:
        x_BLD = x_BLD + self.attn(self.attn_norm(x_BLD), cos_LD, sin_LD, cache)
        if not self.is_moe:
            return x_BLD + self.ffn(self.ffn_norm(x_BLD)), {}, None
        ffn_out, aux_losses, stats = self.ffn(self.ffn_norm(x_BLD), token_ids_BL)
        return x_BLD + ffn_out, aux_losses, stats
