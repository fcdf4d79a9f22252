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
from dsmoe.model.norm import RMSNorm
from dsmoe.model.output import ModelOutput
from dsmoe.model.rope import RotaryEmbedding

IGNORE_INDEX = -100


class DeepSeekMoEForCausalLM(nn.Module):
    """Embedding, `n_layers` decoder blocks (dense or MoE by config.moe_layers), final norm, LM head.

    forward(input_ids, labels=None, cache=None): labels are aligned with input positions
    (labels[:, t] is the token expected after input_ids[:, t], i.e. already shifted); -100 is ignored.
    Activation checkpointing is switched on from outside by `apply_activation_checkpointing`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rope = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.layers = nn.ModuleList(DecoderBlock(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.activation_checkpointing = False
        if self.lm_head.weight.device.type != "meta":
            init_weights(self, config.init_std)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layers, self.config.max_seq_len)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                cache: KVCache | None = None) -> ModelOutput:
        n_past = cache.length if cache is not None else 0
        seq_len = input_ids.shape[1]
        if n_past + seq_len > self.config.max_seq_len:
            raise ValueError(f"sequence of {n_past + seq_len} tokens exceeds max_seq_len={self.config.max_seq_len}")
        cos_LD, sin_LD = self.rope(torch.arange(n_past, n_past + seq_len, device=input_ids.device))
        x_BLD = self.embed_tokens(input_ids)
        aux_losses: dict[str, torch.Tensor] = {}
        router_stats = []
        for block in self.layers:
            x_BLD, block_aux, stats = self.run_block(block, x_BLD, cos_LD, sin_LD, input_ids, cache)
            for name, value in block_aux.items():
                aux_losses[name] = aux_losses[name] + value if name in aux_losses else value
            if stats is not None:
                router_stats.append(stats)
        if cache is not None:
            cache.length += seq_len
        logits = self.lm_head(self.norm(x_BLD))
        out = ModelOutput(logits, aux_losses=aux_losses, router_stats=router_stats,
                          moe_layers=self.config.moe_layers, cache=cache)
        if labels is not None:
            out.lm_loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
            out.loss = out.lm_loss + sum(aux_losses.values())
        return out

    def run_block(self, block: DecoderBlock, x_BLD, cos_LD, sin_LD, input_ids, cache):
        if self.activation_checkpointing and torch.is_grad_enabled() and cache is None:
            return checkpoint(block, x_BLD, cos_LD, sin_LD, input_ids, use_reentrant=False)
        return block(x_BLD, cos_LD, sin_LD, input_ids, cache)


def apply_activation_checkpointing(model: DeepSeekMoEForCausalLM, enabled: bool = True) -> DeepSeekMoEForCausalLM:
    """Recompute each block's activations in backward instead of storing them (per-block granularity)."""
    model.activation_checkpointing = enabled
    return model
