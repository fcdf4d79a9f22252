"""The DeepSeekMoE causal language model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from dsmoe.config import ModelConfig
from dsmoe.model.block import DecoderBlock
from dsmoe.model.init import init_weights
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.mtp import MultiTokenPrediction, mtp_loss
from dsmoe.model.norm import RMSNorm
from dsmoe.model.output import IGNORE_INDEX, ModelOutput, add_losses
from dsmoe.model.padding import Padding
from dsmoe.model.rope import RotaryEmbedding
from dsmoe.model.yarn import YarnScaling


class DeepSeekMoEForCausalLM(nn.Module):
    """Embedding, `n_layers` decoder blocks (dense or MoE by config.moe_layers), final norm, LM head, and
    config.n_mtp_modules multi-token prediction modules (`mtp`, None when there are none).

    forward(input_ids, labels=None, cache=None, mtp=None, attention_mask_BL=None): labels are aligned with
    input positions (labels[:, t] is the token expected after input_ids[:, t], i.e. already shifted); -100 is
    ignored. mtp: run the MTP modules (None: when training with labels and no cache and no attention mask;
    they add aux_losses["mtp"] when labels are given, and fill ModelOutput.mtp_logits). Inference without
    labels never pays for them.
    attention_mask_BL: for padded batches, True at real tokens and False at pads, for this forward's tokens
    only (a KV cache remembers the earlier ones). Pads are never attended to, positions count real tokens
    only, and MoE layers route real tokens only, so each row's logits at its real tokens equal those of the
    row run alone (see dsmoe.model.padding). Logits at pads are meaningless; give them label -100.
    Activation checkpointing is switched on from outside by `apply_activation_checkpointing`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rope = RotaryEmbedding(config.rope_head_dim, config.rope_theta, YarnScaling.from_config(config))
        self.layers = nn.ModuleList(DecoderBlock(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.mtp = MultiTokenPrediction(config) if config.n_mtp_modules else None
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.activation_checkpointing = False
        if self.lm_head.weight.device.type != "meta":
            init_weights(self, config.init_std)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KV cache for up to max_len tokens (default max_seq_len; buffers are allocated that long)."""
        if max_len is not None and not 0 < max_len <= self.config.max_seq_len:
            raise ValueError(f"max_len={max_len} must be in [1, max_seq_len={self.config.max_seq_len}]")
        return KVCache(self.config.n_layers, max_len or self.config.max_seq_len)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, cache: KVCache | None = None,
                mtp: bool | None = None, attention_mask_BL: torch.Tensor | None = None) -> ModelOutput:
        n_past = cache.length if cache is not None else 0
        seq_len = input_ids.shape[1]
        if n_past + seq_len > self.config.max_seq_len:
            raise ValueError(f"sequence of {n_past + seq_len} tokens exceeds max_seq_len={self.config.max_seq_len}")
        padding = Padding.build(attention_mask_BL, cache, input_ids)
        cos_LU, sin_LU = self.rope_tables(n_past, seq_len, padding, input_ids.device)
        x_BLD = self.embed_tokens(input_ids)
        aux_losses: dict[str, torch.Tensor] = {}
        router_stats = []
        for block in self.layers:
            x_BLD, block_aux, stats = self.run_block(block, x_BLD, cos_LU, sin_LU, input_ids, cache, padding)
            add_losses(aux_losses, block_aux)
            if stats is not None:
                router_stats.append(stats)
        if cache is not None:
            cache.length += seq_len
        hidden_BLD = self.norm(x_BLD)
        out = ModelOutput(self.lm_head(hidden_BLD), aux_losses=aux_losses, router_stats=router_stats,
                          moe_layers=self.config.moe_layers, cache=cache, hidden_BLD=hidden_BLD)
        if self.runs_mtp(mtp, labels, cache, padding):
            out.mtp_logits, mtp_aux = self.mtp(hidden_BLD, input_ids, cos_LU, sin_LU, self.embed_tokens, self.lm_head,
                                               checkpointed=self.checkpointing_active(cache))
            add_losses(aux_losses, mtp_aux)
            if labels is not None and out.mtp_logits:
                aux_losses["mtp"] = mtp_loss(out.mtp_logits, labels, self.config.mtp_loss_weight)
        if labels is not None:
            out.lm_loss = F.cross_entropy(out.logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
            out.loss = out.lm_loss + sum(aux_losses.values())
        return out

    def rope_tables(self, n_past: int, seq_len: int, padding: Padding | None,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [L, U] at positions n_past.., or [B, 1, L, U] at each row's own positions when padded."""
        if padding is None:
            return self.rope(torch.arange(n_past, n_past + seq_len, device=device))
        cos_BLU, sin_BLU = self.rope(padding.position_ids_BL)
        return cos_BLU.unsqueeze(1), sin_BLU.unsqueeze(1)

    def runs_mtp(self, mtp: bool | None, labels: torch.Tensor | None, cache: KVCache | None,
                 padding: Padding | None) -> bool:
        if mtp is None:
            return self.mtp is not None and labels is not None and self.training and cache is None and padding is None
        if mtp and self.mtp is None:
            raise ValueError(f"mtp=True needs MTP modules; config.n_mtp_modules={self.config.n_mtp_modules}")
        if mtp and cache is not None:
            raise ValueError("mtp=True with a KV cache: the MTP modules keep no cache; run them on whole sequences")
        if mtp and padding is not None:
            raise ValueError("mtp=True with attention_mask_BL: the MTP modules take no padding; run them unpadded")
        return mtp

    def checkpointing_active(self, cache: KVCache | None) -> bool:
        return self.activation_checkpointing and torch.is_grad_enabled() and cache is None

    def run_block(self, block: DecoderBlock, x_BLD, cos_LU, sin_LU, input_ids, cache, padding):
        if self.checkpointing_active(cache):
            return checkpoint(block, x_BLD, cos_LU, sin_LU, input_ids, None, padding, use_reentrant=False)
        return block(x_BLD, cos_LU, sin_LU, input_ids, cache, padding)


def apply_activation_checkpointing(model: DeepSeekMoEForCausalLM, enabled: bool = True) -> DeepSeekMoEForCausalLM:
    """Recompute each block's activations in backward instead of storing them (per-block granularity)."""
    model.activation_checkpointing = enabled
    return model
