"""DeepSeek-V2 and DeepSeek-V3 configs (transformers' deepseek_v2 / deepseek_v3) <-> ModelConfig.

Both use multi-head latent attention, dense FFNs in the first `first_k_dense_replace` layers and MoE after,
and biases on q_a_proj, kv_a_proj_with_mqa and o_proj when attention_bias is set. V2 routes with a softmax,
greedy or group-limited by each group's best expert, then multiplies by routed_scaling_factor; V3 with a sigmoid,
group-limited by each group's top-2 sum, e_score_correction_bias added for the choice only ("noaux_tc"),
optionally renormalised, then scaled. V2 always rotates interleaved pairs; V3 has rope_interleave.
"""

from __future__ import annotations

from typing import Any

from dsmoe.config import ModelConfig
from dsmoe.interop.hf_config import (COMMON_DEFAULTS, HFConfig, balance_scope_of, common_fields, common_hf_fields,
                                     routed_expert_fields)

V2_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 2048,
               "intermediate_size": 11008, "moe_intermediate_size": 1407, "n_routed_experts": 64,
               "n_shared_experts": 2, "num_experts_per_tok": None, "first_k_dense_replace": 0, "kv_lora_rank": 512,
               "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
               "routed_scaling_factor": 1.0, "topk_method": "greedy", "n_group": None, "topk_group": None,
               "norm_topk_prob": False, "attention_bias": False, "mlp_bias": False}
V3_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 4096,
               "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
               "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "kv_lora_rank": 512,
               "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
               "routed_scaling_factor": 2.5, "n_group": 8, "topk_group": 4, "norm_topk_prob": True,
               "rope_interleave": True, "attention_bias": False, "num_nextn_predict_layers": 1}
V2_ALIASES = {"n_routed_experts": "num_experts"}
V3_ALIASES = {"n_routed_experts": "num_local_experts", "num_nextn_predict_layers": "num_mtp_layers"}
MLA_SIZES = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


def deepseek_fields(hf: HFConfig) -> dict[str, Any]:
    """What V2 and V3 share: MLA sizes, biases, the dense-then-MoE layout and the fused shared experts."""
    hf.require("moe_layer_freq", (1,), "transformers makes every layer from first_k_dense_replace on MoE")
    if hf["n_shared_experts"] is None or hf["n_shared_experts"] < 1:
        hf.refuse("n_shared_experts", hf["n_shared_experts"],
                  "transformers builds a zero-width shared expert; dsmoe needs at least one")
    return dict(**common_fields(hf), attention="mla", **{name: hf[name] for name in MLA_SIZES},
                attention_bias=hf["attention_bias"], o_proj_bias=hf["attention_bias"],
                intermediate_size=hf["intermediate_size"], moe_intermediate_size=hf["moe_intermediate_size"],
                **routed_expert_fields(hf, hf["n_routed_experts"]), n_shared_experts=hf["n_shared_experts"],
                first_k_dense_replace=hf["first_k_dense_replace"],
                routed_scaling_factor=float(hf["routed_scaling_factor"]),
                **({"aux_loss_alpha": hf["aux_loss_alpha"]} if "aux_loss_alpha" in hf else {}),
                **({"balance_scope": balance_scope_of(hf["seq_aux"])} if "seq_aux" in hf else {}))


def deepseek_hf_fields(config: ModelConfig) -> dict[str, Any]:
    dense_layers = config.n_layers - len(config.moe_layers)
    return dict(**common_hf_fields(config), num_key_value_heads=config.n_heads,
                **{name: getattr(config, name) for name in MLA_SIZES}, attention_bias=config.attention_bias,
                intermediate_size=config.intermediate_size, moe_intermediate_size=config.moe_intermediate_size,
                n_routed_experts=config.n_routed_experts, num_experts_per_tok=config.n_activated_experts,
                n_shared_experts=config.n_shared_experts, first_k_dense_replace=dense_layers,
                routed_scaling_factor=config.routed_scaling_factor, aux_loss_alpha=config.aux_loss_alpha,
                seq_aux=config.balance_scope == "sequence")


def v2_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    """transformers' DeepseekV2TopkRouter: softmax, "greedy" or "group_limited_greedy", times the scale."""
    hf.require("mlp_bias", (False,), "dsmoe's FFNs have no biases")
    hf.require("scoring_func", ("softmax",), "deepseek_v2 routes with a softmax")
    hf.require("topk_method", ("greedy", "group_limited_greedy"), "transformers' DeepseekV2 knows only these two")
    hf.require("norm_topk_prob", (False,), "transformers' DeepseekV2 ignores it while DeepSeek's own code "
                                           "renormalises, so the two disagree")
    grouped = hf["topk_method"] == "group_limited_greedy"
    groups = dict(n_group=hf["n_group"], topk_group=hf["topk_group"]) if grouped else {}
    return dict(**deepseek_fields(hf), rope_interleave=True, router="softmax_topk", norm_topk_prob=False, **groups)


def v2_to_hf(config: ModelConfig) -> dict[str, Any]:
    grouped = config.n_group > 1
    return dict(**deepseek_hf_fields(config), topk_method="group_limited_greedy" if grouped else "greedy",
                n_group=config.n_group if grouped else None, topk_group=config.topk_group if grouped else None,
                norm_topk_prob=False, mlp_bias=False)


def v3_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    """transformers' DeepseekV3TopkRouter: sigmoid, bias-corrected group-limited choice, renormalise, scale."""
    hf.require("scoring_func", ("sigmoid",), "deepseek_v3 routes with a sigmoid")
    hf.require("topk_method", ("noaux_tc",), "deepseek_v3 routes with noaux_tc")
    return dict(**deepseek_fields(hf), rope_interleave=hf["rope_interleave"], router="sigmoid_topk",
                n_group=hf["n_group"], topk_group=hf["topk_group"], norm_topk_prob=hf["norm_topk_prob"])


def v3_to_hf(config: ModelConfig) -> dict[str, Any]:
    return dict(**deepseek_hf_fields(config), rope_interleave=config.rope_interleave, n_group=config.n_group,
                topk_group=config.topk_group, norm_topk_prob=config.norm_topk_prob,
                num_nextn_predict_layers=config.n_mtp_modules)
