"""OLMoE configs (transformers' olmoe) <-> ModelConfig.

Every layer is MoE with experts of width intermediate_size and no shared expert; softmax top-k routing,
renormalised when norm_topk_prob. Queries and keys are RMS-normalised over their whole projections (dsmoe's
qk_norm="full"), so head_dim is hidden_size // num_attention_heads; biases on q/k/v/o with attention_bias.
"""

from __future__ import annotations

from typing import Any

from dsmoe.config import ModelConfig
from dsmoe.interop.hf_config import (COMMON_DEFAULTS, HFConfig, common_fields, common_hf_fields, mha_fields,
                                     routed_expert_fields)

OLMOE_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
                  "num_key_value_heads": None, "intermediate_size": 2048, "num_experts": 64, "num_experts_per_tok": 8,
                  "norm_topk_prob": False, "attention_bias": False, "clip_qkv": None}
OLMOE_ALIASES = {"num_experts": "num_local_experts"}


def olmoe_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    hf.require("clip_qkv", (None,), "dsmoe does not clip queries, keys and values")
    attention = mha_fields(hf)
    if attention["head_dim"] is not None:
        hf.refuse("head_dim", attention["head_dim"], "OLMoE's q_norm spans hidden_size, so heads are "
                  "hidden_size // num_attention_heads wide")
    return dict(**common_fields(hf), **attention, attention_bias=hf["attention_bias"],
                o_proj_bias=hf["attention_bias"], qk_norm="full", intermediate_size=hf["intermediate_size"],
                moe_intermediate_size=hf["intermediate_size"], **routed_expert_fields(hf, hf["num_experts"]),
                n_shared_experts=0, norm_topk_prob=hf["norm_topk_prob"])


def olmoe_to_hf(config: ModelConfig) -> dict[str, Any]:
    return dict(**common_hf_fields(config), num_key_value_heads=config.n_kv_heads,
                intermediate_size=config.moe_intermediate_size, num_experts=config.n_routed_experts,
                num_experts_per_tok=config.n_activated_experts, norm_topk_prob=config.norm_topk_prob,
                attention_bias=config.attention_bias, clip_qkv=None)
