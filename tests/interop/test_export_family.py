"""Which family an export uses: without model_type, the first that fits (natural_family first); when none fits,
one error lists every exportable family with every reason it cannot express the config, and names a shipped
config that exports; with a model_type that does not fit, every reason too."""

import re
from pathlib import Path

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.interop.families import EXPORTABLE_EXAMPLE, export_family, exportable, natural_family
from dsmoe.interop.hf import save_pretrained
from dsmoe.runs import RunConfig
from interop.hf_models import load_hf, randomize, token_batch
from model.hf_reference import TOLERANCE, max_abs_diff

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(vocab_size=128, hidden_size=32, n_layers=2, n_heads=4, max_seq_len=32, intermediate_size=48,
             moe_intermediate_size=16, n_routed_experts=4, n_activated_experts=2)
MLA_SIGMOID = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4,
                   v_head_dim=6, rope_interleave=True, router="sigmoid_topk")


def default_config() -> ModelConfig:
    return RunConfig.load(REPO / "configs" / "tiny.toml").model


def family_reasons(message: str) -> dict[str, list[str]]:
    """The error's `  family: reason; reason` lines, as family -> reasons."""
    lines = re.findall(r"^  (\w+): (.+)$", message, flags=re.MULTILINE)
    return {family: reasons.split("; ") for family, reasons in lines}


def test_the_default_config_names_every_family_with_all_its_reasons_and_a_config_that_exports():
    with pytest.raises(ValueError) as error:
        export_family(default_config())
    reasons = family_reasons(str(error.value))
    assert list(reasons) == exportable()
    assert all(len(why) >= 2 for why in reasons.values()), reasons  # not only the first field that differs
    assert reasons["deepseek_v3"] == ["attention='mha' (would load back as 'mla')",
                                      "router='softmax_topk' (would load back as 'sigmoid_topk')"]
    assert "configs/tiny-v3.toml" in str(error.value) and "export as deepseek_v3" in str(error.value)


def test_the_shipped_config_the_error_names_exports_as_the_family_it_names():
    path, family = EXPORTABLE_EXAMPLE
    assert export_family(RunConfig.load(REPO / path).model).model_type == family
    assert (REPO / "src" / "dsmoe" / path).read_text() == (REPO / path).read_text()  # the installed copy too


def test_an_explicit_model_type_that_does_not_fit_lists_every_reason():
    with pytest.raises(ValueError) as error:
        export_family(default_config(), "deepseek_v2")
    assert str(error.value) == ("deepseek_v2 cannot express this config: attention='mha' (would load back as 'mla'); "
                                "rope_interleave=False (would load back as True); "
                                "norm_topk_prob=True (would load back as False)")


def test_fields_a_family_refuses_are_listed_with_the_fields_it_would_change():
    config = ModelConfig(**SMALL, **MLA_SIGMOID, n_shared_experts=0, n_group=2, group_score="max")
    with pytest.raises(ValueError) as error:
        export_family(config, "deepseek_v3")
    assert "deepseek_v3 field n_shared_experts=0 is not supported" in str(error.value)
    assert "; group_score_size=1 (would load back as 2)" in str(error.value)


def test_mtp_modules_a_family_cannot_hold_point_to_the_export_without_them():
    config = ModelConfig(**{**SMALL, **MLA_SIGMOID, "router": "softmax_topk"}, n_mtp_modules=1)
    with pytest.raises(ValueError, match=r"n_mtp_modules=1 \(would load back as 0, so export without MTP modules: "
                                         r"mtp=False, --no-mtp\)"):
        export_family(config)


@torch.no_grad()
def test_a_config_only_a_family_other_than_its_closest_fits_is_exported_as_that_family(tmp_path):
    # dense layers with n_shared_experts set: closest to deepseek_v3 (MHA, so no), expressed by qwen2_moe's
    # mlp_only_layers
    config = ModelConfig(**{**SMALL, "n_routed_experts": 0}, n_shared_experts=1)
    assert natural_family(config) != "qwen2_moe"
    assert export_family(config).model_type == "qwen2_moe"
    model = randomize(DeepSeekMoEForCausalLM(config)).eval()
    save_pretrained(model, tmp_path)
    reference = load_hf(tmp_path)
    assert type(reference).__name__ == "Qwen2MoeForCausalLM"
    assert max_abs_diff(model(token_batch()).logits, reference(token_batch()).logits) <= TOLERANCE


def test_deepseek_v4_options_are_refused_by_every_family_naming_them():
    # transformers' deepseek_v4 is not a family dsmoe writes (docs/INTEROP.md): V3 would load these back without them
    config = ModelConfig(**{**SMALL, **MLA_SIGMOID, "router": "sqrtsoftplus_topk"}, n_hash_layers=1, swiglu_limit=10.0)
    with pytest.raises(ValueError) as error:
        export_family(config)
    assert family_reasons(str(error.value))["deepseek_v3"] == [
        "router='sqrtsoftplus_topk' (would load back as 'sigmoid_topk')", "n_hash_layers=1 (would load back as 0)",
        "swiglu_limit=10.0 (would load back as None)"]
