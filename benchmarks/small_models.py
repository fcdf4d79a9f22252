"""The small DeepSeek-V3-style model the step and decoding benchmarks share, in dsmoe and transformers.

4 layers, hidden 256, MLA attention (kv_lora_rank 64, no q compression), every FFN a MoE of
1 shared + 31 routed experts of width 128, top-4, sigmoid routing; and a dense dsmoe model whose
FFN width (4 + 1) * 128 = 640 gives the same activated FLOPs per token.
"""

from __future__ import annotations

import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.interop.hf import to_transformers

VOCAB, HIDDEN, LAYERS, HEADS = 4096, 256, 4, 4
EXPERTS, TOP_K, EXPERT_WIDTH, SHARED = 31, 4, 128, 1
MLA = dict(kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=32)


def dsmoe_config(max_seq_len: int, dense: bool = False) -> ModelConfig:
    common = dict(vocab_size=VOCAB, hidden_size=HIDDEN, n_layers=LAYERS, n_heads=HEADS, max_seq_len=max_seq_len,
                  attention="mla", **MLA)
    if dense:
        return ModelConfig(**common, intermediate_size=(TOP_K + SHARED) * EXPERT_WIDTH, n_routed_experts=0,
                           n_shared_experts=0, aux_loss_alpha=0.0)
    return ModelConfig(**common, moe_intermediate_size=EXPERT_WIDTH, n_routed_experts=EXPERTS,
                       n_shared_experts=SHARED, n_activated_experts=TOP_K, router="sigmoid_topk",
                       norm_topk_prob=True, routed_scaling_factor=2.5, aux_loss_alpha=0.0)


def build_models(max_seq_len: int, with_transformers: bool = True) -> dict[str, torch.nn.Module]:
    """dsmoe's model, the same weights in transformers' DeepseekV3ForCausalLM (unless `with_transformers` is
    False), and the dense equal-FLOPs model."""
    torch.manual_seed(0)
    models = {"dsmoe": DeepSeekMoEForCausalLM(dsmoe_config(max_seq_len))}
    if with_transformers:
        models["hf-deepseek_v3"] = to_transformers(models["dsmoe"], "deepseek_v3")
        models["hf-deepseek_v3"].set_experts_implementation("grouped_mm")  # transformers' fastest experts path
    return {**models, "dsmoe-dense": DeepSeekMoEForCausalLM(dsmoe_config(max_seq_len, dense=True))}
