"""One pre-norm decoder block: x + Attn(Norm(x)), then + FFN(Norm(x)) with FFN dense or MoE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.attention import Attention
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.mla import MultiHeadLatentAttention
from dsmoe.model.moe import MoE, SwiGLU
from dsmoe.model.norm import RMSNorm
from dsmoe.model.padding import Padding
from dsmoe.routers import RouterStats

ATTENTIONS = {"mha": Attention, "mla": MultiHeadLatentAttention}


class DecoderBlock(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.is_moe = layer_idx in config.moe_layers
        self.attn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.attn = ATTENTIONS[config.attention](config, layer_idx)
        self.ffn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.ffn = MoE(config, layer_idx) if self.is_moe else SwiGLU(config.hidden_size, config.intermediate_size)
        self.dropout = config.dropout

    def forward(self, x_BLD: torch.Tensor, cos_LU: torch.Tensor, sin_LU: torch.Tensor, token_ids_BL: torch.Tensor,
                cache: KVCache | None = None, padding: Padding | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RouterStats | None]:
        visible_B1LM = padding.visible_B1LM if padding is not None else None
        x_BLD = x_BLD + self.drop(self.attn(self.attn_norm(x_BLD), cos_LU, sin_LU, cache, visible_B1LM))
        if not self.is_moe:
            return x_BLD + self.drop(self.ffn(self.ffn_norm(x_BLD))), {}, None
        ffn_out, aux_losses, stats = self.moe_on_real_tokens(self.ffn_norm(x_BLD), token_ids_BL, padding)
        return x_BLD + self.drop(ffn_out), aux_losses, stats

    def drop(self, branch_BLD: torch.Tensor) -> torch.Tensor:
        """Residual dropout of a branch's output (config.dropout), in training only."""
        if self.dropout == 0 or not self.training:
            return branch_BLD
        return F.dropout(branch_BLD, self.dropout, training=True)

    def moe_on_real_tokens(self, h_BLD: torch.Tensor, token_ids_BL: torch.Tensor, padding: Padding | None
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RouterStats]:
        """The MoE layer; in a padded batch it sees only the real tokens, packed as one row, so pads are not
        routed, not counted in router stats and take no expert capacity (their output is zero). Packed, the
        per-sequence routers (soft_moe, the sequence-level balance loss) see the batch as one sequence."""
        if padding is None:
            return self.ffn(h_BLD, token_ids_BL)
        real_T = padding.real_BL.flatten().nonzero().squeeze(1)
        h_TD = h_BLD.flatten(0, 1)
        out_1TD, aux_losses, stats = self.ffn(h_TD.index_select(0, real_T).unsqueeze(0),
                                              token_ids_BL.flatten().index_select(0, real_T).unsqueeze(0))
        return h_TD.new_zeros(h_TD.shape).index_copy(0, real_T, out_1TD.squeeze(0)).view_as(h_BLD), aux_losses, stats
