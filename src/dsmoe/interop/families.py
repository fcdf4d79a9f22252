"""The Hugging Face model families dsmoe converts, by model_type, and whether a dsmoe config fits one.

A family maps a config.json to ModelConfig fields (`read`) and back (`write`). A config fits a family when
writing it and reading it back gives the same logits-deciding fields (`logit_fields`); `Family.problems` names
every field the family refuses or would change, and `export_family` picks the family an export uses. Knobs that
do not decide logits (balance losses, bias update speed, expert kernel, mla_absorb, init_std) travel where a
family has a field for them (initializer_range; DeepSeek's aux_loss_alpha and seq_aux, as balance_scope
"sequence" or "micro_batch"); otherwise an import leaves them at dsmoe's defaults and an export does not write
them.
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

    def fields(self, values: dict[str, Any], refusals: list[str] | None = None) -> HFConfig:
        """A config.json's fields, read over this family's defaults (refusals: see HFConfig)."""
        return HFConfig(values, self.model_type, self.defaults, self.aliases, refusals)

    def config(self, values: dict[str, Any], mtp_layers: int = 0, refusals: list[str] | None = None) -> ModelConfig:
        """The ModelConfig of a config.json (`values`) whose checkpoint holds `mtp_layers` MTP layers."""
        fields = self.read(self.fields(values, refusals))
        return ModelConfig(**fields, n_mtp_modules=mtp_layers if self.has_mtp else 0)

    def written(self, config: ModelConfig) -> dict[str, Any]:
        """The config.json fields this family writes for `config` (whether they express it or not)."""
        return {"model_type": self.model_type, "architectures": [self.architecture], **self.write(config)}

    def problems(self, config: ModelConfig) -> list[str]:
        """Every reason this family cannot express `config`, none when it fits: the fields its config.json
        refuses, then each logit-deciding field that would load back changed."""
        if self.write is None:
            return [f"model_type {self.model_type!r} is import-only (remote code)"]
        refusals: list[str] = []
        try:
            back = self.config(self.written(config), config.n_mtp_modules, refusals)
        except ValueError as error:
            return [*refusals, str(error)]
        return [*refusals, *changed_fields(logit_fields(config), logit_fields(back))]

    def hf_config(self, config: ModelConfig) -> dict[str, Any]:
        """config.json fields expressing `config`; ValueError naming every reason this family cannot."""
        if self.write is None:
            raise ValueError(f"model_type {self.model_type!r} is import-only (remote code); export to one of "
                             f"{', '.join(exportable())}")
        problems = self.problems(config)
        if problems:
            raise ValueError(f"{self.model_type} cannot express this config: {'; '.join(problems)}")
        return self.written(config)


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
    """The transformers family closest to `config` (it may still not fit: see Family.problems)."""
    if config.attention == "mla":
        return "deepseek_v2" if ROUTERS.traits(config.router).scoring_func == "softmax" else "deepseek_v3"
    by_attention = {"head": "qwen3_moe", "full": "olmoe"}.get(config.qk_norm)
    if by_attention:
        return by_attention
    if config.shared_expert_gate:
        return "qwen2_moe"
    return "mixtral" if config.shared_expert_width == 0 else "deepseek_v3"


EXPORTABLE_EXAMPLE = ("configs/tiny-v3.toml", "deepseek_v3")  # a shipped config whose runs export (tested)


def export_family(config: ModelConfig, model_type: str | None = None) -> Family:
    """The family an export of `config` uses: `model_type`, or else the first that fits, natural_family first.
    ValueError lists every reason the family (or, without model_type, every exportable one) cannot express it."""
    if model_type is not None:
        family = get_family(model_type)
        family.hf_config(config)
        return family
    natural = natural_family(config)
    problems = {name: FAMILIES[name].problems(config) for name in [natural, *exportable()]}
    for name, reasons in problems.items():
        if not reasons:
            return FAMILIES[name]
    example, example_family = EXPORTABLE_EXAMPLE
    lines = "\n".join(f"  {name}: {'; '.join(reasons)}" for name, reasons in problems.items())
    raise ValueError(f"no Hugging Face family can express this config:\n{lines}\nhint: runs of the shipped "
                     f"{example} (DeepSeek-V3's mechanisms at the tiny size) export as {example_family}")


COMMON_LOGIT_FIELDS = ("vocab_size", "hidden_size", "n_layers", "n_heads", "max_seq_len", "rope_theta", "norm_eps",
                       "attention", "attention_bias", "o_proj_bias", "qk_norm", "rope_interleave", "rope_scaling_type",
                       "tie_word_embeddings", "n_mtp_modules", "moe_layers")
MLA_LOGIT_FIELDS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
MOE_LOGIT_FIELDS = ("n_routed_experts", "n_activated_experts", "moe_intermediate_size", "shared_expert_width",
                    "router", "norm_topk_prob", "routed_scaling_factor", "n_group", "n_hash_layers", "swiglu_limit")


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


FIELD_HINTS = {"n_mtp_modules": ", so export without MTP modules: mtp=False, --no-mtp"}


def changed_fields(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """`name=value (would load back as other)` for each field of `expected` that `got` changes. A field `got`
    lacks is left out: a field that decides which fields count (attention, moe_layers, n_group, ...) changed."""
    return [f"{name}={value!r} (would load back as {got[name]!r}{FIELD_HINTS.get(name, '')})"
            for name, value in expected.items() if name in got and got[name] != value]
