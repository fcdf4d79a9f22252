"""The seed API, kept working as thin aliases over ModelConfig and DeepSeekMoEForCausalLM."""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.model.transformer import DeepSeekMoEForCausalLM

_ALIASES = {"num_shared_experts": "n_shared_experts", "num_routed_experts": "n_routed_experts",
            "num_experts_per_token": "n_activated_experts", "num_experts_per_tok": "n_activated_experts",
            "num_layers": "n_layers", "num_hidden_layers": "n_layers", "num_heads": "n_heads",
            "num_attention_heads": "n_heads", "num_key_value_heads": "n_kv_heads",
            "expert_intermediate_size": "moe_intermediate_size", "max_position_embeddings": "max_seq_len"}


def DeepSeekMoEConfig(**kwargs) -> ModelConfig:  # noqa: N802 (seed API name)
    """ModelConfig accepting the seed's names (num_routed_experts, num_experts_per_token, ...)."""
    return ModelConfig.from_dict({_ALIASES.get(k, k): v for k, v in kwargs.items()})


class DeepSeekMoEModel(DeepSeekMoEForCausalLM):
    """Seed API: calling the model on input_ids returns logits [batch, seq, vocab]."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(input_ids).logits


class MoETransformerLM(DeepSeekMoEForCausalLM):
    """Seed API: plain top-k MoE LM (no shared experts) built from positional hyper-parameters.

    forward(input_ids) returns logits; get_aux_loss() returns the summed aux loss of that last call
    (0 when use_moe_aux_loss is False).
    """

    def __init__(self, d_model: int, n_head: int, vocab_size: int, max_seq_len: int, d_ff: int, theta: float,
                 n_layer: int, n_experts: int, top_k: int, use_moe_aux_loss: bool = True,
                 moe_aux_loss_weight: float = 0.01, moe_layer_indices: list[int] | None = None):
        config = ModelConfig(vocab_size=vocab_size, hidden_size=d_model, n_layers=n_layer, n_heads=n_head,
                             max_seq_len=max_seq_len, rope_theta=theta, intermediate_size=d_ff,
                             moe_intermediate_size=d_ff, n_routed_experts=n_experts, n_shared_experts=0,
                             n_activated_experts=top_k, moe_layer_indices=moe_layer_indices,
                             aux_loss_alpha=moe_aux_loss_weight if use_moe_aux_loss else 0.0)
        super().__init__(config)
        self._last_aux_loss = torch.zeros(())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = super().forward(input_ids)
        self._last_aux_loss = sum(out.aux_losses.values(), torch.zeros((), device=input_ids.device))
        return out.logits

    def get_aux_loss(self) -> torch.Tensor:
        return self._last_aux_loss


class HybridMoETransformerLM(MoETransformerLM):
    """Seed API: MoETransformerLM with MoE only in `moe_layer_indices`, dense SwiGLU elsewhere."""

    def __init__(self, *args, moe_layer_indices: list[int], **kwargs):
        super().__init__(*args, moe_layer_indices=moe_layer_indices, **kwargs)
