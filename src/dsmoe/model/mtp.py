"""Multi-token prediction (DeepSeek-V3 Sec. 2.2): D sequential modules; module k predicts token i + k + 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from dsmoe.config import ModelConfig
from dsmoe.model.block import DecoderBlock
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.norm import RMSNorm
from dsmoe.model.output import IGNORE_INDEX, add_losses


class MTPModule(nn.Module):
    """h'_i = eh_proj([enorm(Emb(t_{i+k})); hnorm(h^{k-1}_i)]) (Eq. 21), h^k = block(h') (Eq. 22), then the
    norm in front of the shared output head (Eq. 23).

    Names and the concatenation order (embedding first) follow DeepSeek-V3's checkpoint, whose layer 61
    holds enorm, hnorm, eh_proj, shared_head.norm (`norm` here), the block, and copies of the embedding and
    output head; here those two are the main model's, shared as Sec. 2.2 prescribes. transformers'
    deepseek_v3 drops layer 61 on load (_keys_to_ignore_on_load_unexpected), vLLM's deepseek_mtp runs it.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.enorm = RMSNorm(config.hidden_size, config.norm_eps)
        self.hnorm = RMSNorm(config.hidden_size, config.norm_eps)
        self.eh_proj = nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)
        self.block = DecoderBlock(config, config.n_layers - 1)  # the main model's last block type, dense or MoE
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)

    def forward(self, previous_BLD: torch.Tensor, next_embeddings_BLD: torch.Tensor, cos_LU: torch.Tensor,
                sin_LU: torch.Tensor, next_ids_BL: torch.Tensor, cache: KVCache | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """cache: this module's own KV cache (the block writes it at the main model's last layer index; the
        caller advances its length), for incremental drafting; training runs whole sequences without one."""
        merged_BLD = self.eh_proj(torch.cat([self.enorm(next_embeddings_BLD), self.hnorm(previous_BLD)], dim=-1))
        out_BLD, aux_losses, _ = self.block(merged_BLD, cos_LU, sin_LU, next_ids_BL, cache)
        return self.norm(out_BLD), aux_losses


class MultiTokenPrediction(nn.Module):
    """The D modules run in sequence, each keeping the complete causal chain (Sec. 2.2).

    Depth k reads, at positions i < L - k, its predecessor's normalised output (depth 1: the main model's
    final-norm output, the tensor its head reads, as vLLM and Megatron-LM feed it) and the embedding of
    t_{i+k}. It keeps no KV cache. Its MoE routers' aux losses add to the model's; their stats are not
    reported in ModelOutput.router_stats (which lists the main model's MoE layers).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(MTPModule(config) for _ in range(config.n_mtp_modules))

    def forward(self, hidden_BLD: torch.Tensor, input_ids_BL: torch.Tensor, cos_LU: torch.Tensor,
                sin_LU: torch.Tensor, embed: nn.Embedding, head: nn.Linear, checkpointed: bool = False
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Logits [B, L - k, V] of every depth k < L, and the summed aux losses of the modules' routers."""
        all_logits, aux_losses = [], {}
        previous_BLD = hidden_BLD
        for depth, layer in enumerate(self.layers, start=1):
            length = input_ids_BL.shape[1] - depth
            if length < 1:
                break
            next_ids_BL = input_ids_BL[:, depth:]
            args = (previous_BLD[:, :length], embed(next_ids_BL), cos_LU[:length], sin_LU[:length], next_ids_BL)
            previous_BLD, layer_aux = checkpoint(layer, *args, use_reentrant=False) if checkpointed else layer(*args)
            add_losses(aux_losses, layer_aux)
            all_logits.append(head(previous_BLD))
        return all_logits, aux_losses


def mtp_loss(mtp_logits: list[torch.Tensor], labels_BL: torch.Tensor, weight: float) -> torch.Tensor:
    """L_MTP = lambda / D * sum_k CE_k (Eq. 24-25). labels[:, t] is the token after input t, so depth k's
    target at position i (token i + k + 1) is labels[:, i + k]; D counts the depths that ran."""
    losses = [F.cross_entropy(logits_BLV.float().flatten(0, 1), labels_BL[:, depth:].flatten(),
                              ignore_index=IGNORE_INDEX)
              for depth, logits_BLV in enumerate(mtp_logits, start=1)]
    return weight * torch.stack(losses).mean()
