"""Reading and writing the config.json fields every Hugging Face MoE family shares: sizes, norms, RoPE and YaRN.

Field names and defaults are those of transformers 5.23's configuration classes; legacy files (`rope_theta` and
`rope_scaling` at the top level, as DeepSeek's published config.json) read the same as `rope_parameters`.
"""

from __future__ import annotations

from typing import Any

from dsmoe.config import ModelConfig


class HFConfig:
    """A config.json's fields over its family's transformers defaults, read by name; errors name the field.

    aliases: transformers' attribute_map (e.g. Mixtral saves num_experts as num_local_experts).
    refusals: None to raise at the first unsupported field (an import), or a list that collects every one while
    reading goes on (an export's check, which names every reason a family cannot express a config).
    """

    def __init__(self, values: dict[str, Any], model_type: str, defaults: dict[str, Any],
                 aliases: dict[str, str] | None = None, refusals: list[str] | None = None):
        self.values, self.model_type, self.defaults, self.aliases = values, model_type, defaults, aliases or {}
        self.refusals = refusals

    def __contains__(self, name: str) -> bool:
        return name in self.values or self.aliases.get(name) in self.values

    def __getitem__(self, name: str) -> Any:
        for key in (name, self.aliases.get(name)):
            if key in self.values:
                return self.values[key]
        if name in self.defaults:
            return self.defaults[name]
        raise ValueError(f"config.json of model_type {self.model_type!r} lacks the field {name!r}")

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self or name in self.defaults else default

    def refuse(self, name: str, value: Any, why: str) -> None:
        """Raise ValueError naming the unsupported field and value, or collect it (see `refusals`)."""
        message = f"{self.model_type} field {name}={value!r} is not supported: {why}"
        if self.refusals is None:
            raise ValueError(message)
        self.refusals.append(message)

    def require(self, name: str, allowed: tuple, why: str) -> None:
        """Refuse the field unless (when present) it holds one of `allowed`."""
        value = self.get(name, allowed[0])
        if value not in allowed:
            self.refuse(name, value, why)


COMMON_DEFAULTS = {"tie_word_embeddings": False, "initializer_range": 0.02, "hidden_act": "silu"}
YARN_DEFAULTS = dict(beta_fast=32.0, beta_slow=1.0)


def common_fields(hf: HFConfig) -> dict[str, Any]:
    """Sizes, norm epsilon, tying and RoPE: the ModelConfig fields every family sets the same way."""
    hf.require("hidden_act", ("silu",), "dsmoe's FFNs are SwiGLU (silu)")
    if hf.get("quantization_config") is not None:
        hf.refuse("quantization_config", hf["quantization_config"].get("quant_method"),
                  "dequantize the checkpoint (e.g. to bf16) first")
    return dict(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
                n_heads=hf["num_attention_heads"], max_seq_len=hf["max_position_embeddings"],
                norm_eps=float(hf["rms_norm_eps"]), tie_word_embeddings=hf["tie_word_embeddings"],
                init_std=float(hf["initializer_range"]), **rope_fields(hf))


def rope_params(hf: HFConfig) -> dict[str, Any]:
    """transformers 5's rope_parameters, or the legacy rope_scaling."""
    return dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})


def rope_fields(hf: HFConfig) -> dict[str, Any]:
    """rope_theta and YaRN, as transformers' standardize_rope_params and _compute_yarn_parameters read them."""
    params = rope_params(hf)
    theta = float(params.get("rope_theta", hf["rope_theta"]))
    rope_type = params.get("rope_type", params.get("type", "default"))
    partial = params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        hf.refuse("partial_rotary_factor", partial, "dsmoe rotates whole heads")
    if rope_type not in ("default", "yarn"):
        hf.refuse("rope_parameters.rope_type", rope_type, "dsmoe has default RoPE and yarn")
    if rope_type != "yarn":
        return dict(rope_theta=theta)
    if params.get("attention_factor") is not None:
        hf.refuse("rope_parameters.attention_factor", params["attention_factor"],
                  "dsmoe derives it from factor, mscale and mscale_all_dim")
    if params.get("truncate", True) is not True:
        hf.refuse("rope_parameters.truncate", params["truncate"], "dsmoe's YaRN truncates (truncate=True)")
    original = params.get("original_max_position_embeddings",
                          hf.get("original_max_position_embeddings", hf["max_position_embeddings"]))
    factor = params.get("factor") or hf["max_position_embeddings"] / original
    return dict(rope_theta=theta, rope_scaling_type="yarn", rope_scaling_factor=float(factor),
                rope_original_max_position_embeddings=int(original),
                rope_beta_fast=float(params.get("beta_fast") or YARN_DEFAULTS["beta_fast"]),
                rope_beta_slow=float(params.get("beta_slow") or YARN_DEFAULTS["beta_slow"]),
                rope_mscale=float(params.get("mscale") or 0.0),
                rope_mscale_all_dim=float(params.get("mscale_all_dim") or 0.0))


def balance_scope_of(seq_aux: bool) -> str:
    """DeepSeek's seq_aux flag as a balance_scope (exported back as seq_aux = balance_scope == "sequence")."""
    return "sequence" if seq_aux else "micro_batch"


def common_hf_fields(config: ModelConfig) -> dict[str, Any]:
    """The inverse of common_fields, in transformers 5's layout (rope_parameters)."""
    return dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.n_layers,
                num_attention_heads=config.n_heads, max_position_embeddings=config.max_seq_len,
                rms_norm_eps=config.norm_eps, tie_word_embeddings=config.tie_word_embeddings,
                initializer_range=config.init_std, hidden_act="silu", rope_parameters=rope_parameters(config),
                bos_token_id=None, eos_token_id=None, pad_token_id=None)


def rope_parameters(config: ModelConfig) -> dict[str, Any]:
    if config.rope_scaling_type == "none":
        return {"rope_type": "default", "rope_theta": config.rope_theta}
    params = {"rope_type": "yarn", "rope_theta": config.rope_theta, "factor": config.rope_scaling_factor,
              "original_max_position_embeddings": config.rope_original_max_position_embeddings,
              "beta_fast": config.rope_beta_fast, "beta_slow": config.rope_beta_slow}
    for name, value in (("mscale", config.rope_mscale), ("mscale_all_dim", config.rope_mscale_all_dim)):
        if value:
            params[name] = value
    return params


def mha_fields(hf: HFConfig) -> dict[str, Any]:
    """Grouped-query attention sizes; head_dim stays derived when it is hidden_size // n_heads."""
    if rope_params(hf).get("mscale_all_dim"):
        hf.refuse("rope_parameters.mscale_all_dim", rope_params(hf)["mscale_all_dim"],
                  f"transformers' {hf.model_type} attention does not scale its softmax by it as DeepSeek's "
                  "(and dsmoe's) does")
    head_dim = hf.get("head_dim")
    derived = hf["hidden_size"] // hf["num_attention_heads"]
    return dict(n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
                head_dim=head_dim if head_dim not in (None, derived) else None)


def mha_hf_fields(config: ModelConfig) -> dict[str, Any]:
    return dict(num_key_value_heads=config.n_kv_heads, head_dim=config.head_dim)


def routed_expert_fields(hf: HFConfig, n_experts: int, top_k: str = "num_experts_per_tok") -> dict[str, Any]:
    """Expert count and top-k; without experts (n_experts 0 or None) top-k is moot and set to 1."""
    return dict(n_routed_experts=n_experts or 0, n_activated_experts=hf[top_k] if n_experts else 1)
