"""RoPE variants: interleaved pairs and YaRN scaling equal transformers' (DeepSeek-V2/V3) computations."""

import math

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.model.rope import RotaryEmbedding, apply_rope
from dsmoe.model.yarn import YarnScaling, softmax_scale, yarn_mscale
from hf_reference import transformers_module

ROPE_DIM, BASE = 16, 10000.0
DEEPSEEK_YARN = dict(rope_scaling_factor=40.0, rope_original_max_position_embeddings=4096, rope_beta_fast=32.0,
                     rope_beta_slow=1.0, rope_mscale=0.707, rope_mscale_all_dim=0.707)  # DeepSeek-V2's values
QWEN_YARN = dict(rope_scaling_factor=4.0, rope_original_max_position_embeddings=32768)  # no mscales: 0.1 ln s + 1


def yarn_config(**fields) -> ModelConfig:
    return ModelConfig(hidden_size=64, n_heads=4, attention="mla", qk_rope_head_dim=ROPE_DIM, max_seq_len=64,
                       rope_scaling_type="yarn", **fields)


def hf_deepseek_v3_config(config: ModelConfig):
    parameters = {"rope_type": "yarn", "rope_theta": BASE, "factor": config.rope_scaling_factor,
                  "original_max_position_embeddings": config.rope_original_max_position_embeddings,
                  "beta_fast": config.rope_beta_fast, "beta_slow": config.rope_beta_slow}
    parameters.update({name: value for name, value in (("mscale", config.rope_mscale),
                                                       ("mscale_all_dim", config.rope_mscale_all_dim)) if value})
    max_positions = int(config.rope_scaling_factor * config.rope_original_max_position_embeddings)
    return transformers_module("deepseek_v3.configuration_deepseek_v3").DeepseekV3Config(
        hidden_size=64, num_attention_heads=4, q_lora_rank=None, kv_lora_rank=config.kv_lora_rank,
        qk_rope_head_dim=ROPE_DIM, qk_nope_head_dim=config.qk_nope_head_dim, v_head_dim=config.v_head_dim,
        max_position_embeddings=max_positions, rope_parameters=parameters)


@pytest.mark.parametrize("fields", [DEEPSEEK_YARN, QWEN_YARN, dict(DEEPSEEK_YARN, rope_mscale=1.0)],
                         ids=["deepseek", "no_mscale", "unequal_mscales"])
def test_yarn_frequencies_and_attention_factor_equal_transformers(fields):
    rope_utils = pytest.importorskip("transformers.modeling_rope_utils")
    config = yarn_config(**fields)
    inv_freq, attention_factor = rope_utils._compute_yarn_parameters(hf_deepseek_v3_config(config))
    yarn = YarnScaling.from_config(config)
    assert torch.equal(yarn.inv_freq(ROPE_DIM, BASE), inv_freq)
    assert yarn.attention_factor == attention_factor


@pytest.mark.parametrize("fields", [DEEPSEEK_YARN, QWEN_YARN], ids=["deepseek", "no_mscale"])
def test_yarn_cos_sin_equal_transformers_deepseek_v3_rotary_embedding(fields):
    v3 = transformers_module("deepseek_v3.modeling_deepseek_v3")
    config = yarn_config(**fields)
    positions = torch.arange(0, 64, 7)
    cos, sin = RotaryEmbedding(ROPE_DIM, BASE, YarnScaling.from_config(config))(positions)
    hf_rope = v3.DeepseekV3RotaryEmbedding(hf_deepseek_v3_config(config))
    expected_cos, expected_sin = hf_rope(torch.zeros(1), positions[None])
    assert torch.equal(cos, expected_cos[0]) and torch.equal(sin, expected_sin[0])


@pytest.mark.parametrize("fields", [DEEPSEEK_YARN, QWEN_YARN], ids=["deepseek", "no_mscale"])
def test_softmax_scale_equals_transformers_deepseek_v3_attention(fields):
    v3 = transformers_module("deepseek_v3.modeling_deepseek_v3")
    config = yarn_config(**fields)
    hf = hf_deepseek_v3_config(config)
    assert softmax_scale(config, config.qk_nope_head_dim + ROPE_DIM) == v3.DeepseekV3Attention(hf, 0).scaling


def test_deepseek_softmax_scale_is_mscale_squared_over_sqrt_dim():
    # DeepSeek-V2: factor 40, mscale_all_dim 0.707 -> (0.1 * 0.707 * ln 40 + 1)^2 / sqrt(192)
    expected = (0.1 * 0.707 * math.log(40) + 1) ** 2 / math.sqrt(192)
    assert softmax_scale(yarn_config(**DEEPSEEK_YARN), 192) == pytest.approx(expected, rel=1e-12)
    assert yarn_mscale(0.5) == 1.0


def test_without_scaling_the_softmax_scale_is_one_over_sqrt_dim():
    assert softmax_scale(ModelConfig(), 64) == 64 ** -0.5


def test_interleaved_rope_equals_transformers_deepseek_v3_interleave():
    v3 = transformers_module("deepseek_v3.modeling_deepseek_v3")
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, ROPE_DIM), torch.randn(2, 1, 6, ROPE_DIM)
    cos, sin = RotaryEmbedding(ROPE_DIM, BASE)(torch.arange(3, 9))
    expected_q, expected_k = v3.apply_rotary_pos_emb_interleave(q, k, cos[None], sin[None])
    assert torch.equal(apply_rope(q, cos, sin, interleaved=True), expected_q)
    assert torch.equal(apply_rope(k, cos, sin, interleaved=True), expected_k)


def test_interleaved_rope_is_deepseek_v2s_complex_rotation_with_evens_then_odds():
    v2 = transformers_module("deepseek_v2.modeling_deepseek_v2")
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, ROPE_DIM), torch.randn(2, 1, 6, ROPE_DIM)
    rope = RotaryEmbedding(ROPE_DIM, BASE)
    freqs_cis = torch.polar(torch.ones(6, ROPE_DIM // 2), torch.arange(6.0)[:, None] * rope.inv_freq)
    expected_q, expected_k = v2.apply_rotary_emb(q, k, freqs_cis[None])
    evens_then_odds = torch.cat([torch.arange(0, ROPE_DIM, 2), torch.arange(1, ROPE_DIM, 2)])
    cos, sin = rope(torch.arange(6))
    torch.testing.assert_close(apply_rope(q, cos, sin, interleaved=True), expected_q[..., evens_then_odds])
    torch.testing.assert_close(apply_rope(k, cos, sin, interleaved=True), expected_k[..., evens_then_odds])


def test_interleaved_rope_scores_depend_only_on_the_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, ROPE_DIM), torch.randn(1, 1, 1, ROPE_DIM)
    rope = RotaryEmbedding(ROPE_DIM, BASE)

    def score(q_pos: int, k_pos: int) -> torch.Tensor:
        rotate = lambda x, pos: apply_rope(x, *rope(torch.tensor([pos])), interleaved=True)  # noqa: E731
        return (rotate(q, q_pos) * rotate(k, k_pos)).sum()

    torch.testing.assert_close(score(9, 4), score(5, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("changes, message", [
    (dict(rope_scaling_type="yarn", rope_scaling_factor=4.0),
     "rope_original_max_position_embeddings=None must be set when rope_scaling_type='yarn'"),
    (dict(rope_scaling_factor=4.0), "rope_scaling_factor=4.0 has no effect unless rope_scaling_type='yarn'"),
    (dict(rope_mscale_all_dim=1.0), "rope_mscale_all_dim=1.0 has no effect unless rope_scaling_type='yarn'"),
    (dict(rope_scaling_type="yarn", rope_scaling_factor=0.5, rope_original_max_position_embeddings=8),
     "rope_scaling_factor=0.5 must be >= 1"),
    (dict(rope_scaling_type="linear"), "rope_scaling_type='linear' must be one of none, yarn"),
])
def test_invalid_rope_settings_are_rejected_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)
