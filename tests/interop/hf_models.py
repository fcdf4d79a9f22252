"""Small random transformers models of every supported family, built offline from their config classes.

Each case is (model_type, config fields); together they cover MLA with and without q_lora_rank, group-limited
routing (n_group > 1), several dense-first layers, tied and untied embeddings, YaRN, biases, qk-norm, the gated
shared expert and Qwen's mlp_only_layers / decoder_sparse_step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsmoe.inference.generate import SamplingConfig, generate

transformers = pytest.importorskip("transformers")

VOCAB, MAX_LEN, NEW_TOKENS = 128, 64, 32
BASE = dict(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, num_key_value_heads=4, num_experts_per_tok=2,
            max_position_embeddings=MAX_LEN, rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None, pad_token_id=None)
MLA = dict(kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6, moe_intermediate_size=16,
           intermediate_size=40, n_routed_experts=8)
YARN_MHA = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
            "beta_fast": 32.0, "beta_slow": 1.0}
YARN_MLA = {**YARN_MHA, "mscale": 0.9, "mscale_all_dim": 0.707}  # DeepSeek's attention-temperature pair
CASES = {
    "mixtral_gqa": ("mixtral", dict(num_hidden_layers=2, num_local_experts=4, intermediate_size=16,
                                    num_key_value_heads=2)),
    "mixtral_tied_head_dim_yarn": ("mixtral", dict(num_hidden_layers=3, num_local_experts=6, num_experts_per_tok=3,
                                                   intermediate_size=24, head_dim=12, tie_word_embeddings=True,
                                                   rope_parameters=YARN_MHA)),
    "qwen2_moe_shared_gate": ("qwen2_moe", dict(num_hidden_layers=2, num_experts=4, moe_intermediate_size=16,
                                                shared_expert_intermediate_size=24, intermediate_size=40)),
    "qwen2_moe_sparse_step_tied": ("qwen2_moe", dict(num_hidden_layers=4, num_experts=8, moe_intermediate_size=16,
                                                     shared_expert_intermediate_size=24, intermediate_size=40,
                                                     mlp_only_layers=[0], decoder_sparse_step=2, norm_topk_prob=True,
                                                     qkv_bias=False, tie_word_embeddings=True)),
    "qwen3_moe_bias_head_dim": ("qwen3_moe", dict(num_hidden_layers=2, num_experts=4, moe_intermediate_size=16,
                                                  head_dim=16, attention_bias=True, norm_topk_prob=True,
                                                  num_key_value_heads=2)),
    "qwen3_moe_dense_layers_yarn_tied": ("qwen3_moe", dict(num_hidden_layers=3, num_experts=8, moe_intermediate_size=16,
                                                           intermediate_size=40, mlp_only_layers=[0, 2],
                                                           tie_word_embeddings=True, rope_parameters=YARN_MHA)),
    "olmoe": ("olmoe", dict(num_hidden_layers=2, num_experts=4, intermediate_size=16)),
    "olmoe_bias_gqa_tied": ("olmoe", dict(num_hidden_layers=2, num_experts=8, intermediate_size=16, attention_bias=True,
                                          norm_topk_prob=True, num_key_value_heads=2, tie_word_embeddings=True)),
    "deepseek_v2_lite_greedy": ("deepseek_v2", dict(num_hidden_layers=3, **MLA, q_lora_rank=None, n_shared_experts=2,
                                                    first_k_dense_replace=1, topk_method="greedy",
                                                    routed_scaling_factor=16.0)),
    "deepseek_v2_group_limited_yarn_tied": ("deepseek_v2", dict(num_hidden_layers=4, **MLA, q_lora_rank=16,
                                                                n_shared_experts=1, first_k_dense_replace=2,
                                                                topk_method="group_limited_greedy", n_group=4,
                                                                topk_group=2, routed_scaling_factor=2.0,
                                                                rope_parameters=YARN_MLA, tie_word_embeddings=True,
                                                                attention_bias=True)),
    "deepseek_v3_groups_yarn": ("deepseek_v3", dict(num_hidden_layers=3, **MLA, q_lora_rank=16, n_shared_experts=1,
                                                    first_k_dense_replace=1, n_group=4, topk_group=2,
                                                    rope_parameters=YARN_MLA)),
    "deepseek_v3_no_q_lora_half_split_tied": ("deepseek_v3", dict(num_hidden_layers=4, **MLA, q_lora_rank=None,
                                                                  n_shared_experts=2, first_k_dense_replace=2,
                                                                  n_group=1, topk_group=1, rope_interleave=False,
                                                                  norm_topk_prob=False, routed_scaling_factor=1.5,
                                                                  tie_word_embeddings=True, attention_bias=True)),
}


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Matrices N(0, 1/fan_in) (fan_in: the last dim) so activations and logits stay O(1) through the layers and
    an absolute 1e-5 on logits is a bound of ~1e-5 relative; norm gains 1 + N(0, 0.1^2); biases and the routers'
    e_score_correction_bias N(0, 0.1^2), enough to change which experts are chosen (biases near 1 would swamp
    the residual stream and make greedy decoding repeat one token)."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator)
        if param.ndim > 1:
            param.copy_(noise * param.shape[-1] ** -0.5)
        else:
            param.copy_(noise * 0.1 + (0.0 if name.endswith("bias") else 1.0))
    for name, buffer in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
    return model


def hf_config(case: str):
    model_type, fields = CASES[case]
    return transformers.AutoConfig.for_model(model_type, **{**BASE, **fields})


def hf_model(case: str, seed: int = 0):
    """The case's transformers model in fp32 eval mode with eager attention and random weights."""
    model = transformers.AutoModelForCausalLM.from_config(hf_config(case), attn_implementation="eager")
    return randomize(model, seed).eval()


def load_hf(directory):
    return transformers.AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager",
                                                             dtype=torch.float32).eval()


def token_batch(batch: int = 2, seq: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def hf_greedy(model, prompt: list[int]) -> list[int]:
    out = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False)
    return out[0, len(prompt):].tolist()


def dsmoe_greedy(model, prompt: list[int]) -> list[int]:
    return generate(model, prompt, SamplingConfig(max_new_tokens=NEW_TOKENS, temperature=0.0, top_k=None))


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same names, and every tensor bit-identical (same dtype, shape and values)."""
    return a.keys() == b.keys() and all(a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]) for name in a)
