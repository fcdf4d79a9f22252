"""Mixtral configs (transformers' mixtral) <-> ModelConfig.

Every layer is MoE with experts of width intermediate_size and no shared expert; the gate is a softmax over the
top-k logits, which is softmax_topk with norm_topk_prob (the two are equal). No attention biases, no qk-norm.
"""

from __future__ import annotations

from typing import Any

from dsmoe.config import ModelConfig
from dsmoe.interop.hf_config import (COMMON_DEFAULTS, HFConfig, common_fields, common_hf_fields, mha_fields,
                                     mha_hf_fields, routed_expert_fields)

MIXTRAL_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 1e6, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
                    "num_key_value_heads": 8, "intermediate_size": 14336, "num_local_experts": 8,
                    "num_experts_per_tok": 2, "sliding_window": None, "router_jitter_noise": 0.0}
MIXTRAL_ALIASES = {"num_local_experts": "num_experts"}


def mixtral_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    hf.require("sliding_window", (None,), "dsmoe attends over the whole context")
    hf.require("router_jitter_noise", (0.0, 0), "dsmoe's softmax_topk router has no jitter")
    return dict(**common_fields(hf), **mha_fields(hf), intermediate_size=hf["intermediate_size"],
                moe_intermediate_size=hf["intermediate_size"], **routed_expert_fields(hf, hf["num_local_experts"]),
                n_shared_experts=0, norm_topk_prob=True)


def mixtral_to_hf(config: ModelConfig) -> dict[str, Any]:
    return dict(**common_hf_fields(config), **mha_hf_fields(config), intermediate_size=config.moe_intermediate_size,
                num_local_experts=config.n_routed_experts, num_experts_per_tok=config.n_activated_experts,
                sliding_window=None, router_jitter_noise=0.0)
