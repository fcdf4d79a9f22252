"""Every conversion failure names what is wrong: an unsupported model_type or field, a missing, unexpected,
misshapen or integer (for a float weight) tensor, a stored copy that differs, a dsmoe config a family cannot express;
nothing is written then."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, presets
from dsmoe.interop.hf import from_pretrained, from_transformers, save_pretrained, to_transformers
from interop.hf_models import hf_model

SMALL = dict(vocab_size=64, hidden_size=32, n_layers=2, n_heads=4, max_seq_len=32, intermediate_size=48,
             moe_intermediate_size=16, n_routed_experts=4, n_activated_experts=2)
MLA = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
           rope_interleave=True)


@pytest.fixture(scope="module")
def saved_mixtral(tmp_path_factory):
    """A transformers save_pretrained directory of a small Mixtral (2 layers, 4 experts)."""
    directory = tmp_path_factory.mktemp("mixtral")
    hf_model("mixtral_gqa").save_pretrained(directory)
    return directory


def copy_with(source, target, config_changes=None, tensors=None):
    """A copy of checkpoint directory `source` with config.json fields changed and tensors edited by `tensors`."""
    target.mkdir()
    config = {**json.loads((source / "config.json").read_text()), **(config_changes or {})}
    (target / "config.json").write_text(json.dumps(config))
    weights = load_file(source / "model.safetensors")
    save_file(tensors(weights) if tensors else weights, str(target / "model.safetensors"))
    return target


def test_unsupported_model_type_names_it_and_the_supported_ones(saved_mixtral, tmp_path):
    directory = copy_with(saved_mixtral, tmp_path / "llama", {"model_type": "llama"})
    with pytest.raises(ValueError, match=r"unsupported model_type 'llama'; supported: deepseek_v3, deepseek_v2, "
                                         r"mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek"):
        from_pretrained(directory)


def test_a_missing_tensor_is_named(saved_mixtral, tmp_path):
    name = "model.layers.1.block_sparse_moe.experts.3.w2.weight"
    directory = copy_with(saved_mixtral, tmp_path / "out", tensors=lambda w: {k: v for k, v in w.items() if k != name})
    with pytest.raises(ValueError, match=f"lacks tensor\\(s\\) \\['{name}'\\]; 1 missing"):
        from_pretrained(directory)


def test_an_extra_tensor_is_named(saved_mixtral, tmp_path):
    name = "model.layers.0.block_sparse_moe.gate.bias"  # a router bias dsmoe's softmax_topk router does not have
    directory = copy_with(saved_mixtral, tmp_path / "out", tensors=lambda w: {**w, name: torch.ones(4)})
    with pytest.raises(ValueError, match=f"has tensor\\(s\\) \\['{name}'\\] that the model has no place for"):
        from_pretrained(directory)


def test_a_shape_mismatch_names_the_tensor_and_both_shapes(saved_mixtral, tmp_path):
    name = "model.layers.0.self_attn.q_proj.weight"
    directory = copy_with(saved_mixtral, tmp_path / "out", tensors=lambda w: {**w, name: torch.zeros(32, 30)})
    with pytest.raises(ValueError, match=f"tensor '{name}' has shape \\[32, 30\\]; the model expects \\[32, 32\\]"):
        from_pretrained(directory)


def test_an_integer_tensor_where_the_model_has_floats_is_refused_naming_it_and_its_dtype(saved_mixtral, tmp_path):
    name = "model.layers.0.self_attn.o_proj.weight"
    directory = copy_with(saved_mixtral, tmp_path / "out", tensors=lambda w: {**w, name: w[name].to(torch.int8)})
    with pytest.raises(ValueError, match=f"tensor '{name}' has dtype int8; the model's layers.0.attn.o_proj.weight "
                                         "is floating point"):
        from_pretrained(directory)


@pytest.mark.parametrize("changes, message", [
    (dict(sliding_window=4096), "mixtral field sliding_window=4096 is not supported"),
    (dict(router_jitter_noise=0.1), "mixtral field router_jitter_noise=0.1 is not supported"),
    (dict(hidden_act="gelu"), "mixtral field hidden_act='gelu' is not supported: dsmoe's FFNs are SwiGLU"),
    (dict(rope_parameters={"rope_type": "linear", "rope_theta": 1e6, "factor": 2.0}),
     "mixtral field rope_parameters.rope_type='linear' is not supported"),
    (dict(quantization_config={"quant_method": "fp8"}), "mixtral field quantization_config='fp8' is not supported"),
    (dict(num_hidden_layers=3), r"lacks tensor\(s\) \['model.layers.2."),
])
def test_an_unsupported_field_is_named_with_its_value(saved_mixtral, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        from_pretrained(copy_with(saved_mixtral, tmp_path / "out", changes))


@pytest.mark.parametrize("case, changes, message", [
    ("qwen2_moe_shared_gate", dict(use_sliding_window=True), "qwen2_moe field use_sliding_window=True"),
    ("olmoe", dict(clip_qkv=8.0), "olmoe field clip_qkv=8.0 is not supported"),
    ("deepseek_v2_lite_greedy", dict(topk_method="noaux_tc"), "deepseek_v2 field topk_method='noaux_tc'"),
    ("deepseek_v2_lite_greedy", dict(norm_topk_prob=True), "deepseek_v2 field norm_topk_prob=True"),
    ("deepseek_v3_groups_yarn", dict(moe_layer_freq=2), "deepseek_v3 field moe_layer_freq=2"),
    ("deepseek_v3_groups_yarn", dict(num_nextn_predict_layers=2, num_hidden_layers=2),
     r"checkpoint holds MTP layers \[2\] but num_nextn_predict_layers=2"),
])
def test_family_fields_without_a_dsmoe_equivalent_are_named(case, changes, message, tmp_path):
    hf_model(case).save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match=message):
        from_pretrained(copy_with(tmp_path / "hf", tmp_path / "out", changes))


def test_a_stored_copy_that_differs_from_the_shared_tensor_is_named(tmp_path):
    hf_model("olmoe_bias_gqa_tied").save_pretrained(tmp_path / "hf")
    directory = copy_with(tmp_path / "hf", tmp_path / "out",
                          tensors=lambda w: {**w, "lm_head.weight": w["model.embed_tokens.weight"] + 1})
    with pytest.raises(ValueError, match="tensor 'lm_head.weight' differs from the one dsmoe keeps for "
                                         "'embed_tokens.weight'"):
        from_pretrained(directory)


def small_model(**changes) -> DeepSeekMoEForCausalLM:
    return DeepSeekMoEForCausalLM(ModelConfig(**{**SMALL, **changes}))


@pytest.mark.parametrize("changes, model_type, message", [
    (dict(), "deepseek_v3", r"deepseek_v3 cannot express this config: attention='mha' \(would load back as 'mla'\)"),
    (dict(n_shared_experts=0), "qwen3_moe", r"qwen3_moe cannot express this config: qk_norm='none' \(would load"),
    (dict(), "mixtral", r"shared_expert_width=16 \(would load back as 0\)"),
    (dict(n_shared_experts=0, moe_layer_indices=[1]), "mixtral", r"moe_layers=\[1\] \(would load back as \[0, 1\]\)"),
    (dict(n_shared_experts=0, qk_norm="head", router="noisy_topk"), "qwen3_moe",
     r"router='noisy_topk' \(would load back as 'softmax_topk'\)"),
    (dict(n_shared_experts=0, router="sinkhorn"), "mixtral",
     r"router='sinkhorn' \(would load back as 'softmax_topk'\)"),
    (dict(**MLA, router="sigmoid_topk"), "deepseek_v2", r"router='sigmoid_topk' \(would load back as 'softmax_topk'\)"),
    (dict(**MLA, n_mtp_modules=1), "deepseek_v2", r"n_mtp_modules=1 \(would load back as 0"),
    (dict(**MLA, n_group=2, group_score="top2_sum"), "deepseek_v2",
     r"group_score_size=2 \(would load back as 1\)"),  # group_limited_greedy scores by the best expert
    (dict(**MLA, router="sigmoid_topk", n_group=2, group_score="max"), "deepseek_v3",
     r"group_score_size=1 \(would load back as 2\)"),  # noaux_tc scores by the top-2 sum
    (dict(**{**MLA, "rope_interleave": False}), "deepseek_v2", r"rope_interleave=False \(would load back as True\)"),
    (dict(**MLA, router="sigmoid_topk", n_shared_experts=0), "deepseek_v3",
     "deepseek_v3 cannot express this config: deepseek_v3 field n_shared_experts=0 is not supported"),
    (dict(n_shared_experts=0, qk_norm="head", rope_scaling_type="yarn", rope_scaling_factor=4.0,
          rope_original_max_position_embeddings=8, rope_mscale_all_dim=0.7), "qwen3_moe",
     "qwen3_moe field rope_parameters.mscale_all_dim=0.7 is not supported: transformers' qwen3_moe attention"),
    (dict(), "deepseek", "model_type 'deepseek' is import-only"),
    (dict(), "llama", "unsupported model_type 'llama'"),
])
def test_a_config_a_family_cannot_express_is_refused_naming_the_field(changes, model_type, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        save_pretrained(small_model(**changes), tmp_path / "out", model_type)
    assert not (tmp_path / "out").exists()


def test_to_transformers_refuses_mtp_modules_unless_told_to_leave_them_out():
    with pytest.raises(ValueError, match="n_mtp_modules=1: transformers models have no MTP modules; pass mtp=False"):
        to_transformers(small_model(**MLA, router="sigmoid_topk", n_mtp_modules=1))


def test_save_pretrained_never_writes_into_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an empty directory"):
        save_pretrained(from_transformers(hf_model("olmoe")), tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]


def test_a_directory_without_config_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a Hugging Face checkpoint directory"):
        from_pretrained(tmp_path)


def test_the_tiny_preset_fits_no_transformers_family_and_the_error_says_why(tmp_path):
    # DeepSeekMoE's own layout (MHA, ungated shared experts) exists only as DeepSeek's remote code
    with pytest.raises(ValueError, match=r"no Hugging Face family can express this config:\n  deepseek_v3: "
                                         r"attention='mha' \(would load back as 'mla'\)"):
        save_pretrained(DeepSeekMoEForCausalLM(presets.get("tiny")), tmp_path / "out")
