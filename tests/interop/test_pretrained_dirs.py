"""Checkpoint directories: transformers' own save_pretrained directories load into dsmoe and dsmoe's load into
transformers, bit for bit, under the same on-disk names; sharding with an index; DeepSeek-V3's MTP layers are read
into dsmoe's MTP modules, whose logits match an independent reference; loading streams into a meta-device model."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import dsmoe.model.transformer
from dsmoe.interop.hf import from_pretrained, from_transformers, save_pretrained, to_transformers
from interop.checkpoints import per_expert_layout
from interop.hf_models import CASES, hf_model, load_hf, randomize, state_dicts_equal, token_batch
from model.hf_reference import TOLERANCE, causal_additive_mask, max_abs_diff


def safetensors_names(directory) -> set[str]:
    names = set()
    for path in directory.glob("*.safetensors"):
        with safe_open(path, "pt") as shard:
            names |= set(shard.keys())
    return names


@pytest.mark.parametrize("case", CASES)
def test_from_pretrained_reads_transformers_save_pretrained(case, tmp_path):
    reference = hf_model(case)
    reference.save_pretrained(tmp_path)
    assert state_dicts_equal(from_pretrained(tmp_path).state_dict(), from_transformers(reference).state_dict())


@pytest.mark.parametrize("case", CASES)
def test_save_pretrained_writes_transformers_own_names_and_loads_in_transformers(case, tmp_path):
    reference = hf_model(case)
    reference.save_pretrained(tmp_path / "transformers")
    save_pretrained(from_transformers(reference), tmp_path / "dsmoe")
    assert safetensors_names(tmp_path / "dsmoe") == safetensors_names(tmp_path / "transformers")
    loaded = load_hf(tmp_path / "dsmoe")
    assert state_dicts_equal(loaded.state_dict(), reference.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(token_batch()).logits, reference(token_batch()).logits)


def test_sharded_save_writes_an_index_and_loads_in_dsmoe_and_transformers(tmp_path):
    model = from_transformers(hf_model("deepseek_v3_groups_yarn"))
    save_pretrained(model, tmp_path, max_shard_bytes=20_000)
    weight_map = json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(weight_map.values())) > 2 and set(weight_map) == safetensors_names(tmp_path)
    assert state_dicts_equal(from_pretrained(tmp_path).state_dict(), model.state_dict())
    assert state_dicts_equal(load_hf(tmp_path).state_dict(), to_transformers(model).state_dict())


def test_from_pretrained_builds_on_the_meta_device_without_initialising_weights(tmp_path, monkeypatch):
    reference = hf_model("qwen2_moe_shared_gate")
    reference.save_pretrained(tmp_path)
    monkeypatch.setattr(dsmoe.model.transformer, "init_weights", lambda *_: pytest.fail("weights initialised"))
    assert state_dicts_equal(from_pretrained(tmp_path).state_dict(), from_transformers(reference).state_dict())


def test_from_pretrained_casts_weights_and_keeps_the_expert_bias_in_fp32(tmp_path):
    hf_model("deepseek_v3_groups_yarn").save_pretrained(tmp_path)
    model = from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.layers[1].ffn.router.expert_bias.dtype == torch.float32


MTP_CASE = "deepseek_v3_groups_yarn"


def mtp_parts(reference) -> nn.ModuleDict:
    """One DeepSeek-V3 MTP module from transformers' own classes: a decoder layer (MoE, index num_hidden_layers),
    enorm, hnorm, eh_proj and shared_head's norm, with random weights."""
    v3 = pytest.importorskip("transformers.models.deepseek_v3.modeling_deepseek_v3")
    config = reference.config
    norm = lambda: v3.DeepseekV3RMSNorm(config.hidden_size, config.rms_norm_eps)  # noqa: E731
    parts = nn.ModuleDict(dict(layer=v3.DeepseekV3DecoderLayer(config, layer_idx=config.num_hidden_layers),
                               enorm=norm(), hnorm=norm(), head_norm=norm(),
                               eh_proj=nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)))
    return randomize(parts, seed=1).eval()


def write_mtp_checkpoint(directory, reference, parts) -> None:
    """transformers' save_pretrained plus DeepSeek-V3's MTP layer as published: model.layers.{n}.* in a second
    shard, with its copies of the embedding and output head."""
    reference.save_pretrained(directory)
    prefix = f"model.layers.{reference.config.num_hidden_layers}."
    tensors = {prefix + name: tensor for name, tensor in per_expert_layout(parts["layer"].state_dict()).items()}
    tensors.update({prefix + "enorm.weight": parts["enorm"].weight, prefix + "hnorm.weight": parts["hnorm"].weight,
                    prefix + "eh_proj.weight": parts["eh_proj"].weight,
                    prefix + "shared_head.norm.weight": parts["head_norm"].weight,
                    prefix + "shared_head.head.weight": reference.lm_head.weight,
                    prefix + "embed_tokens.weight": reference.model.embed_tokens.weight})
    save_file({name: tensor.detach().clone() for name, tensor in tensors.items()}, str(directory / "mtp.safetensors"))


@torch.no_grad()
def reference_mtp_logits(reference, parts, ids: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3 Sec. 2.2, depth 1, in the published checkpoint's convention (as vLLM's
    DeepSeekMultiTokenPredictorLayer runs it): h'_i = eh_proj([enorm(Emb(t_{i+1})); hnorm(h_i)]) with h_i the main
    model's final-norm output, then the MTP decoder layer, shared_head.norm and the output head."""
    hidden = reference.model(ids).last_hidden_state[:, :-1]
    merged = parts["eh_proj"](torch.cat([parts["enorm"](reference.model.embed_tokens(ids[:, 1:])),
                                         parts["hnorm"](hidden)], dim=-1))
    positions = torch.arange(merged.shape[1])[None]
    out = parts["layer"](merged, attention_mask=causal_additive_mask(merged.shape[1]), position_ids=positions,
                         position_embeddings=reference.model.rotary_emb(merged, positions))
    return reference.lm_head(parts["head_norm"](out))


@torch.no_grad()
def test_mtp_layers_load_into_dsmoe_mtp_with_the_reference_logits(tmp_path):
    reference = hf_model(MTP_CASE)
    parts = mtp_parts(reference)
    write_mtp_checkpoint(tmp_path, reference, parts)
    model = from_pretrained(tmp_path)
    ids = token_batch()
    out = model(ids, mtp=True)
    assert model.config.n_mtp_modules == 1
    assert max_abs_diff(out.logits, reference(ids).logits) <= TOLERANCE
    assert max_abs_diff(out.mtp_logits[0], reference_mtp_logits(reference, parts, ids)) <= TOLERANCE


def test_mtp_modules_round_trip_through_save_pretrained_and_transformers_skips_them(tmp_path):
    reference = hf_model(MTP_CASE)
    write_mtp_checkpoint(tmp_path / "published", reference, mtp_parts(reference))
    model = from_pretrained(tmp_path / "published")
    save_pretrained(model, tmp_path / "saved")
    assert safetensors_names(tmp_path / "saved") == safetensors_names(tmp_path / "published")
    assert state_dicts_equal(from_pretrained(tmp_path / "saved").state_dict(), model.state_dict())
    assert state_dicts_equal(load_hf(tmp_path / "saved").state_dict(), reference.state_dict())
