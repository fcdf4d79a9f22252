"""The dense counterpart of an MoE model: the same model with every layer a dense FFN that activates exactly the
FFN parameters one MoE layer activates per token (shared experts plus the top-K' routed ones), so the two cost the
same per token and differ only in what the MoE adds: routed experts to choose from. DeepSeekMoE's Table 1 compares
its models this way ("Dense" beside MoE models of the same activated compute)."""

from __future__ import annotations

import dataclasses

from dsmoe.config import ModelConfig


def activated_ffn_width(config: ModelConfig) -> int:
    """The SwiGLU width one token runs through in an MoE layer: the shared experts' plus its K' routed experts'."""
    return config.shared_expert_width + config.n_activated_experts * config.moe_intermediate_size


def dense_counterpart(config: ModelConfig) -> ModelConfig:
    """`config` with every FFN dense of width intermediate_size, which must equal an MoE layer's activated width
    (so the dense layers the MoE model already has and the replaced MoE layers all match)."""
    if not config.moe_layers:
        raise ValueError("the model has no MoE layers (n_routed_experts=0): it is dense already")
    width = activated_ffn_width(config)
    if width != config.intermediate_size:
        raise ValueError(
            f"an MoE layer activates a FFN width of {width} (shared {config.shared_expert_width} + "
            f"n_activated_experts={config.n_activated_experts} x moe_intermediate_size={config.moe_intermediate_size})"
            f", but intermediate_size={config.intermediate_size}: they must be equal for a dense counterpart of the "
            "same activated parameters")
    return dataclasses.replace(config, n_routed_experts=0, n_shared_experts=0, shared_expert_intermediate_size=None,
                               shared_expert_gate=False, aux_loss_alpha=0.0, device_balance_alpha=0.0,
                               comm_balance_alpha=0.0, z_loss_coef=0.0, moe_layer_indices=None)
