"""Qwen2-MoE and Qwen3-MoE configs (transformers' qwen2_moe / qwen3_moe) <-> ModelConfig.

Both route with a softmax top-k, renormalised when norm_topk_prob. A layer is MoE when it is not in
mlp_only_layers and (i + 1) % decoder_sparse_step == 0 (dsmoe: moe_layer_indices); the others are dense FFNs of
width intermediate_size. Qwen2-MoE adds q/k/v biases (qkv_bias) and one shared expert of width
shared_expert_intermediate_size scaled by sigmoid(shared_expert_gate); Qwen3-MoE has per-head q/k RMSNorm,
biases on q/k/v/o with attention_bias, and no shared expert.
"""

from __future__ import annotations

from typing import Any

from dsmoe.config import ModelConfig
from dsmoe.interop.hf_config import (COMMON_DEFAULTS, HFConfig, common_fields, common_hf_fields, mha_fields,
                                     mha_hf_fields, routed_expert_fields)

QWEN_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
                 "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": False, "use_sliding_window": False}
QWEN2_DEFAULTS = {**QWEN_DEFAULTS, "num_key_value_heads": 16, "intermediate_size": 5632, "moe_intermediate_size": 1408,
                  "shared_expert_intermediate_size": 5632, "num_experts_per_tok": 4, "num_experts": 60,
                  "qkv_bias": True}
QWEN3_DEFAULTS = {**QWEN_DEFAULTS, "num_key_value_heads": 4, "intermediate_size": 6144, "moe_intermediate_size": 768,
                  "num_experts_per_tok": 8, "num_experts": 128, "attention_bias": False}
QWEN3_ALIASES = {"num_experts": "num_local_experts"}


def qwen_fields(hf: HFConfig) -> dict[str, Any]:
    """What both Qwen families share: attention sizes, widths, routing and the MoE layer placement."""
    hf.require("use_sliding_window", (False,), "dsmoe attends over the whole context")
    n_layers, n_experts = hf["num_hidden_layers"], hf["num_experts"]
    dense = set(hf["mlp_only_layers"] or [])
    moe_layers = [i for i in range(n_layers) if i not in dense and (i + 1) % hf["decoder_sparse_step"] == 0]
    placement = {} if moe_layers == list(range(n_layers)) or not n_experts else {"moe_layer_indices": moe_layers}
    return dict(**common_fields(hf), **mha_fields(hf), intermediate_size=hf["intermediate_size"],
                moe_intermediate_size=hf["moe_intermediate_size"], **routed_expert_fields(hf, n_experts),
                norm_topk_prob=hf["norm_topk_prob"], **placement)


def qwen_hf_fields(config: ModelConfig) -> dict[str, Any]:
    return dict(**common_hf_fields(config), **mha_hf_fields(config), intermediate_size=config.intermediate_size,
                moe_intermediate_size=config.moe_intermediate_size, num_experts=config.n_routed_experts,
                num_experts_per_tok=config.n_activated_experts, norm_topk_prob=config.norm_topk_prob,
                decoder_sparse_step=1, use_sliding_window=False,
                mlp_only_layers=[i for i in range(config.n_layers) if i not in config.moe_layers])


def qwen2_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    return dict(**qwen_fields(hf), attention_bias=hf["qkv_bias"], n_shared_experts=1,
                shared_expert_intermediate_size=hf["shared_expert_intermediate_size"], shared_expert_gate=True)


def qwen2_to_hf(config: ModelConfig) -> dict[str, Any]:
    return dict(**qwen_hf_fields(config), qkv_bias=config.attention_bias,
                shared_expert_intermediate_size=config.shared_expert_width)


def qwen3_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    return dict(**qwen_fields(hf), attention_bias=hf["attention_bias"], o_proj_bias=hf["attention_bias"],
                qk_norm="head", n_shared_experts=0)


def qwen3_to_hf(config: ModelConfig) -> dict[str, Any]:
    return dict(**qwen_hf_fields(config), attention_bias=config.attention_bias)
