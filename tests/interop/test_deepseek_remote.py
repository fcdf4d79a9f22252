"""DeepSeekMoE-16B's own remote-code layout (model_type "deepseek"): a synthetic checkpoint written by hand with
its key names loads with the logits of a reference assembled from transformers' modules: Llama attention (biased
q/k/v/o with attention_bias, half-split RoPE) and, from first_k_dense_replace on every moe_layer_freq-th layer,
DeepSeek-V2's MoE block with greedy softmax top-k and no scaling (= DeepSeekMoE's MoEGate without
renormalisation) or Qwen3-MoE's block (softmax top-k, renormalised or not, no shared experts)."""

import pytest
import torch

from dsmoe.interop.hf import from_pretrained
from interop.checkpoints import per_expert_layout, write_checkpoint
from interop.hf_models import VOCAB, randomize, token_batch, transformers
from model.hf_reference import TOLERANCE, max_abs_diff

SIZES = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_attention_heads=4, rms_norm_eps=1e-6,
             max_position_embeddings=64, rope_theta=10000.0)
VARIANTS = {  # the remote code's config.json fields beyond SIZES; which MoE layers they make
    "16b_layout": (dict(num_hidden_layers=3, num_key_value_heads=4, n_routed_experts=8, num_experts_per_tok=2,
                        moe_intermediate_size=16, n_shared_experts=2, first_k_dense_replace=1, moe_layer_freq=1,
                        norm_topk_prob=False, attention_bias=False, tie_word_embeddings=False), [1, 2]),
    "every_other_layer_no_shared_renormalised": (dict(num_hidden_layers=4, num_key_value_heads=2, n_routed_experts=8,
                                                      num_experts_per_tok=3, moe_intermediate_size=16,
                                                      n_shared_experts=None, first_k_dense_replace=1, moe_layer_freq=2,
                                                      norm_topk_prob=True, attention_bias=True,
                                                      tie_word_embeddings=True), [2]),
}


def moe_block(fields: dict):
    """transformers' MoE block computing DeepSeekMoE's: V2 greedy (shared experts, no renormalisation, scale 1),
    or Qwen3-MoE's (no shared experts; renormalised when norm_topk_prob)."""
    experts = dict(hidden_size=SIZES["hidden_size"], num_experts_per_tok=fields["num_experts_per_tok"],
                   moe_intermediate_size=fields["moe_intermediate_size"])
    if fields["n_shared_experts"]:
        assert not fields["norm_topk_prob"]
        v2 = pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
        config = transformers.DeepseekV2Config(**experts, n_routed_experts=fields["n_routed_experts"],
                                               n_shared_experts=fields["n_shared_experts"], topk_method="greedy",
                                               routed_scaling_factor=1.0)
        return v2.DeepseekV2Moe(config)
    qwen3 = pytest.importorskip("transformers.models.qwen3_moe.modeling_qwen3_moe")
    config = transformers.Qwen3MoeConfig(**experts, num_experts=fields["n_routed_experts"],
                                         norm_topk_prob=fields["norm_topk_prob"])
    return qwen3.Qwen3MoeSparseMoeBlock(config)


def reference_model(fields: dict, moe_layers: list[int]):
    """A LlamaForCausalLM whose MLPs in `moe_layers` are replaced by the MoE block; same tensor names as the
    remote code except the fused experts."""
    llama = transformers.LlamaConfig(**SIZES, **{k: fields[k] for k in ("num_hidden_layers", "num_key_value_heads",
                                                                        "attention_bias", "tie_word_embeddings")})
    model = transformers.LlamaForCausalLM._from_config(llama, attn_implementation="eager")
    for index in moe_layers:
        model.model.layers[index].mlp = moe_block(fields)
    return randomize(model).eval()


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_remote_code_checkpoint_loads_with_the_reference_logits(variant, tmp_path):
    fields, moe_layers = VARIANTS[variant]
    reference = reference_model(fields, moe_layers)
    state = reference.state_dict()
    if fields["tie_word_embeddings"]:
        del state["lm_head.weight"]
    config = {"model_type": "deepseek", "architectures": ["DeepseekForCausalLM"], "scoring_func": "softmax",
              "hidden_act": "silu", **SIZES, **fields}
    model = from_pretrained(write_checkpoint(tmp_path, config, per_expert_layout(state)))
    assert model.config.moe_layers == moe_layers
    ids = token_batch()
    assert max_abs_diff(model(ids).logits, reference(ids).logits) <= TOLERANCE
