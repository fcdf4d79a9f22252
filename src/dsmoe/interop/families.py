"""The Hugging Face model families dsmoe converts, by model_type, and whether a dsmoe config fits one.

A family maps a config.json to ModelConfig fields (`read`) and back (`write`). A config fits a family when
writing it and reading it back gives the same logits-deciding fields (`logit_fields`); the first that changes
is named in the error. Knobs that do not decide logits (balance losses, bias update speed, expert kernel,
mla_absorb, init_std) travel where a family has a field for them (initializer_range; DeepSeek's aux_loss_alpha
and seq_aux, as balance_scope "sequence" or "micro_batch"); otherwise an import leaves them at dsmoe's defaults
and an export does not write them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dsmoe.config import ModelConfig
from dsmoe.config.model_checks import YARN_FIELDS
from dsmoe.interop import config_deepseek as deepseek
from dsmoe.interop.config_mixtral import MIXTRAL_ALIASES, MIXTRAL_DEFAULTS, mixtral_to_dsmoe, mixtral_to_hf
from dsmoe.interop.config_olmoe import OLMOE_ALIASES, OLMOE_DEFAULTS, olmoe_to_dsmoe, olmoe_to_hf
from dsmoe.interop.config_qwen import (
    QWEN2_DEFAULTS,
    QWEN3_ALIASES,
    QWEN3_DEFAULTS,
    qwen2_to_dsmoe,
    qwen2_to_hf,
    qwen3_to_dsmoe,
    qwen3_to_hf,
)
from dsmoe.interop.deepseek_remote import DEEPSEEK_DEFAULTS, deepseek_to_dsmoe
from dsmoe.interop.hf_config import HFConfig
from dsmoe.interop.keys import KeyNames
from dsmoe.registry import ROUTERS


@dataclass(frozen=True)
class Family:
    """model_type; architecture: its transformers class (None: remote code, import only); defaults and aliases:
    its transformers config class's defaults and attribute_map; read/write: config.json <-> ModelConfig fields;
    names: its on-disk MoE tensor names; has_mtp: DeepSeek-V3's MTP layers after the main ones."""

    model_type: str
    architecture: str | None
    defaults: dict[str, Any]
    read: Callable[[HFConfig], dict[str, Any]]
    write: Callable[[ModelConfig], dict[str, Any]] | None
    names: KeyNames = KeyNames()
    aliases: dict[str, str] = field(default_factory=dict)
    has_mtp: bool = False

    def fields(self, values: dict[str, Any]) -> HFConfig:
        """A config.json's fields, read over this family's defaults."""
        return HFConfig(values, self.model_type, self.defaults, self.aliases)

    def config(self, values: dict[str, Any], mtp_layers: int = 0) -> ModelConfig:
        """The ModelConfig of a config.json (`values`) whose checkpoint holds `mtp_layers` MTP layers."""
        return ModelConfig(**self.read(self.fields(values)), n_mtp_modules=mtp_layers if self.has_mtp else 0)

    def hf_config(self, config: ModelConfig) -> dict[str, Any]:
        """config.json fields expressing `config`; ValueError naming the first field this family cannot express."""
        if self.write is None:
            raise ValueError(f"model_type {self.model_type!r} is import-only (remote code); export to one of "
                             f"{', '.join(exportable())}")
        values = {"model_type": self.model_type, "architectures": [self.architecture], **self.write(config)}
        try:
            back = self.config(values, config.n_mtp_modules)
        except ValueError as error:
            raise ValueError(f"this config cannot be expressed as {self.model_type}: {error}") from None
        expected, got = logit_fields(config), logit_fields(back)
        for name, value in expected.items():
            if got.get(name) != value:
                raise ValueError(f"{name}={value!r} cannot be expressed as {self.model_type} "
                                 f"(it would load back as {name}={got.get(name)!r})")
        return values


FAMILIES: dict[str, Family] = {family.model_type: family for family in (
    Family("deepseek_v3", "DeepseekV3ForCausalLM", deepseek.V3_DEFAULTS, deepseek.v3_to_dsmoe, deepseek.v3_to_hf,
           aliases=deepseek.V3_ALIASES, has_mtp=True),
    Family("deepseek_v2", "DeepseekV2ForCausalLM", deepseek.V2_DEFAULTS, deepseek.v2_to_dsmoe, deepseek.v2_to_hf,
           aliases=deepseek.V2_ALIASES),
    Family("mixtral", "MixtralForCausalLM", MIXTRAL_DEFAULTS, mixtral_to_dsmoe, mixtral_to_hf,
           KeyNames(moe="block_sparse_moe", expert_projections=("w1", "w3", "w2")), MIXTRAL_ALIASES),
    Family("qwen2_moe", "Qwen2MoeForCausalLM", QWEN2_DEFAULTS, qwen2_to_dsmoe, qwen2_to_hf,
           KeyNames(shared_experts="shared_expert")),
    Family("qwen3_moe", "Qwen3MoeForCausalLM", QWEN3_DEFAULTS, qwen3_to_dsmoe, qwen3_to_hf, aliases=QWEN3_ALIASES),
    Family("olmoe", "OlmoeForCausalLM", OLMOE_DEFAULTS, olmoe_to_dsmoe, olmoe_to_hf, aliases=OLMOE_ALIASES),
    Family("deepseek", None, DEEPSEEK_DEFAULTS, deepseek_to_dsmoe, None),
)}


def exportable() -> list[str]:
    return [name for name, family in FAMILIES.items() if family.write is not None]


def get_family(model_type: str | None) -> Family:
    if model_type not in FAMILIES:
        raise ValueError(f"unsupported model_type {model_type!r}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[model_type]


def natural_family(config: ModelConfig) -> str:
    """The transformers family closest to `config` (it may still not fit; hf_config then names the field)."""
    if config.attention == "mla":
        return "deepseek_v2" if ROUTERS.traits(config.router).scoring_func == "softmax" else "deepseek_v3"
    by_attention = {"head": "qwen3_moe", "full": "olmoe"}.get(config.qk_norm)
    if by_attention:
        return by_attention
    if config.shared_expert_gate:
        return "qwen2_moe"
    return "mixtral" if config.shared_expert_width == 0 else "deepseek_v3"


COMMON_LOGIT_FIELDS = ("vocab_size", "hidden_size", "n_layers", "n_heads", "max_seq_len", "rope_theta", "norm_eps",
                       "attention", "attention_bias", "o_proj_bias", "qk_norm", "rope_interleave", "rope_scaling_type",
                       "tie_word_embeddings", "n_mtp_modules", "moe_layers")
MLA_LOGIT_FIELDS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
MOE_LOGIT_FIELDS = ("n_routed_experts", "n_activated_experts", "moe_intermediate_size", "shared_expert_width",
                    "router", "norm_topk_prob", "routed_scaling_factor", "n_group")


def logit_fields(config: ModelConfig) -> dict[str, Any]:
    """The fields (and derived values: moe_layers, shared_expert_width) that decide a model's logits."""
    names = list(COMMON_LOGIT_FIELDS)
    names += MLA_LOGIT_FIELDS if config.attention == "mla" else ("n_kv_heads", "head_dim")
    names += YARN_FIELDS if config.rope_scaling_type == "yarn" else ()
    has_dense = len(config.moe_layers) < config.n_layers
    names += ("intermediate_size",) if has_dense else ()
    if config.moe_layers:
        names += MOE_LOGIT_FIELDS
        names += ("topk_group", "group_score_size") if config.n_group > 1 else ()
        names += ("shared_expert_gate",) if config.shared_expert_width else ()
    return {name: getattr(config, name) for name in names}
