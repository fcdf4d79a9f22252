"""DeepSeekMoE-16B's own remote-code checkpoints (model_type "deepseek", DeepseekForCausalLM): import only.

transformers has no class for them (the hub repo ships modeling_deepseek.py), so this reads the config.json and
key layout that code defines: Llama attention (q/k/v/o_proj, all biased when attention_bias, half-split RoPE,
head_dim = hidden_size // num_attention_heads), and from layer first_k_dense_replace on, every moe_layer_freq-th
layer a DeepseekMoE: `mlp.gate.weight` (MoEGate: softmax scores, top-k, renormalised only when norm_topk_prob,
no scaling), `mlp.experts.{e}.{gate,up,down}_proj.weight` and `mlp.shared_experts.*` of width
n_shared_experts * moe_intermediate_size. That is dsmoe's own placement rule and softmax_topk router.
"""

from __future__ import annotations

from typing import Any

from dsmoe.interop.hf_config import COMMON_DEFAULTS, HFConfig, balance_scope_of, common_fields, routed_expert_fields

# DeepSeek's configuration_deepseek.py (deepseek-ai/deepseek-moe-16b-base) defaults
DEEPSEEK_DEFAULTS = {**COMMON_DEFAULTS, "rope_theta": 10000.0, "rope_scaling": None, "rms_norm_eps": 1e-6,
                     "max_position_embeddings": 2048, "num_key_value_heads": None, "intermediate_size": 10944,
                     "moe_intermediate_size": 1408, "n_shared_experts": 2, "n_routed_experts": 64,
                     "num_experts_per_tok": None, "moe_layer_freq": 1, "first_k_dense_replace": 0,
                     "norm_topk_prob": False, "scoring_func": "softmax", "aux_loss_alpha": 0.001, "seq_aux": True,
                     "attention_bias": False}


def deepseek_to_dsmoe(hf: HFConfig) -> dict[str, Any]:
    hf.require("scoring_func", ("softmax",), "DeepSeekMoE's MoEGate implements only softmax")
    hf.require("rope_scaling", (None,), "its linear and dynamic RoPE scaling have no dsmoe equivalent")
    return dict(**common_fields(hf), n_kv_heads=hf["num_key_value_heads"] or hf["num_attention_heads"],
                attention_bias=hf["attention_bias"], o_proj_bias=hf["attention_bias"],
                intermediate_size=hf["intermediate_size"], moe_intermediate_size=hf["moe_intermediate_size"],
                **routed_expert_fields(hf, hf["n_routed_experts"]), n_shared_experts=hf["n_shared_experts"] or 0,
                first_k_dense_replace=hf["first_k_dense_replace"], moe_layer_freq=hf["moe_layer_freq"],
                norm_topk_prob=hf["norm_topk_prob"], aux_loss_alpha=float(hf["aux_loss_alpha"]),
                balance_scope=balance_scope_of(hf["seq_aux"]))
