"""An export without MTP layers (mtp=False) loads in transformers with no unexpected or missing keys and the dsmoe
model's logits, which the MTP modules do not change; one with them loads with the same logits, and transformers
reports exactly the MTP layer's tensors (model.layers.{n_layers}.*) as unexpected. `dsmoe convert --no-mtp` does the
same for a run."""

import json

import pytest
import torch
from safetensors import safe_open

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.cli.main import main
from dsmoe.interop.hf import from_pretrained, save_pretrained, to_transformers
from dsmoe.runs import RunConfig
from dsmoe.runs.checkpoint import save_weights_only_run
from interop.hf_models import randomize, token_batch, transformers
from model.hf_reference import TOLERANCE, max_abs_diff

TINY_V3_LIKE = dict(vocab_size=128, hidden_size=32, n_layers=3, n_heads=4, max_seq_len=32, intermediate_size=48,
                    attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4,
                    v_head_dim=6, moe_intermediate_size=16, n_shared_experts=1, n_routed_experts=8,
                    n_activated_experts=2, first_k_dense_replace=1, router="sigmoid_topk", n_group=4, topk_group=2,
                    n_mtp_modules=1)


@pytest.fixture(scope="module")
def model() -> DeepSeekMoEForCausalLM:
    """A small model with DeepSeek-V3's mechanisms and one MTP module, random weights."""
    return randomize(DeepSeekMoEForCausalLM(ModelConfig(**TINY_V3_LIKE))).eval()


def load_with_report(directory):
    """transformers' model of `directory` and its loading report (missing_keys, unexpected_keys, ...)."""
    hf_model, report = transformers.AutoModelForCausalLM.from_pretrained(
        directory, attn_implementation="eager", dtype=torch.float32, output_loading_info=True)
    return hf_model.eval(), report


@torch.no_grad()
def test_an_export_without_mtp_loads_with_no_unexpected_keys_and_the_same_logits(model, tmp_path):
    save_pretrained(model, tmp_path, mtp=False)
    assert json.loads((tmp_path / "config.json").read_text())["num_nextn_predict_layers"] == 0
    reference, report = load_with_report(tmp_path)
    assert not report["unexpected_keys"] and not report["missing_keys"] and not report["mismatched_keys"]
    assert max_abs_diff(model(token_batch()).logits, reference(token_batch()).logits) <= TOLERANCE


@torch.no_grad()
def test_an_export_with_mtp_loads_with_the_same_logits_reporting_only_the_mtp_layer_as_unexpected(model, tmp_path):
    save_pretrained(model, tmp_path)
    reference, report = load_with_report(tmp_path)
    mtp_layer = f"model.layers.{model.config.n_layers}."
    assert report["unexpected_keys"] and all(key.startswith(mtp_layer) for key in report["unexpected_keys"])
    assert not report["missing_keys"]
    assert max_abs_diff(model(token_batch()).logits, reference(token_batch()).logits) <= TOLERANCE


def test_an_export_without_mtp_imports_back_as_the_main_model(model, tmp_path):
    save_pretrained(model, tmp_path, mtp=False)
    back = from_pretrained(tmp_path)
    main_weights = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("mtp.")}
    assert back.config.n_mtp_modules == 0 and back.state_dict().keys() == main_weights.keys()
    assert all(torch.equal(back.state_dict()[name], tensor) for name, tensor in main_weights.items())


@torch.no_grad()
def test_to_transformers_without_mtp_gives_the_same_logits(model):
    reference = to_transformers(model, attn_implementation="eager", mtp=False)
    assert max_abs_diff(model(token_batch()).logits, reference(token_batch()).logits) <= TOLERANCE


def test_convert_no_mtp_writes_no_mtp_layer_and_without_it_writes_one(model, tmp_path):
    save_weights_only_run(tmp_path / "run", 0, model, RunConfig(model=model.config).to_toml())
    mtp_layer = f"model.layers.{model.config.n_layers}."
    for flags, mtp_layers in (["--no-mtp"], 0), ([], 1):
        out = tmp_path / f"hf{mtp_layers}"
        assert main(["convert", "--to-hf", str(tmp_path / "run"), "--out", str(out), *flags]) == 0
        assert json.loads((out / "config.json").read_text())["num_nextn_predict_layers"] == mtp_layers
        with safe_open(out / "model.safetensors", "pt") as shard:
            assert any(name.startswith(mtp_layer) for name in shard.keys()) == bool(mtp_layers)


def test_no_mtp_applies_to_exports_only(tmp_path, capsys):
    assert main(["convert", "--from-hf", str(tmp_path), "--out", str(tmp_path / "run"), "--no-mtp"]) == 2
    assert "--model-type and --no-mtp apply to --to-hf" in capsys.readouterr().err
