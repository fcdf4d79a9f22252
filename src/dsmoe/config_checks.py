"""Validation of ModelConfig, run once at construction; every message names field, value, rule."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dsmoe.registry import ROUTERS

if TYPE_CHECKING:  # the config imports this module: the ground floor imports nothing above it
    from dsmoe.config import ModelConfig

DISPATCH_CHOICES = ("auto", "grouped_mm", "loop")
ATTENTION_CHOICES = ("mha", "mla")
QK_NORM_CHOICES = ("none", "head", "full")
ROPE_SCALING_CHOICES = ("none", "yarn")
YARN_FIELDS = ("rope_scaling_factor", "rope_original_max_position_embeddings", "rope_beta_fast", "rope_beta_slow",
               "rope_mscale", "rope_mscale_all_dim")  # used only when rope_scaling_type="yarn"

OPTIONAL_INTS = ("n_kv_heads", "head_dim",  # None: derived from n_heads and hidden_size
                 "q_lora_rank", "shared_expert_intermediate_size", "rope_original_max_position_embeddings")
POSITIVE_INTS = ("vocab_size", "hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim", "max_seq_len", "intermediate_size", "moe_intermediate_size", "moe_layer_freq",
                 "n_group", "topk_group", "n_devices", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                 "qk_rope_head_dim", "v_head_dim", "shared_expert_intermediate_size",
                 "rope_original_max_position_embeddings")
NON_NEGATIVE_INTS = ("n_routed_experts", "n_shared_experts", "first_k_dense_replace", "n_mtp_modules")
POSITIVE_FLOATS = ("rope_theta", "norm_eps", "capacity_factor", "init_std", "routed_scaling_factor",
                   "rope_scaling_factor", "rope_beta_fast", "rope_beta_slow")
NON_NEGATIVE_FLOATS = ("aux_loss_alpha", "device_balance_alpha", "z_loss_coef", "bias_update_speed",
                       "rope_mscale", "rope_mscale_all_dim", "mtp_loss_weight")
BOOLS = ("norm_topk_prob", "seq_aux", "tie_word_embeddings", "attention_bias", "o_proj_bias", "mla_absorb",
         "rope_interleave", "shared_expert_gate")


def _fail(name: str, value, rule: str) -> None:
    raise ValueError(f"{name}={value!r} {rule}")


def _check_types(cfg: "ModelConfig") -> None:
    for name in POSITIVE_INTS + NON_NEGATIVE_INTS:
        value = getattr(cfg, name)
        if value is None and name in OPTIONAL_INTS:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(name, value, "must be an integer")
        if name in POSITIVE_INTS and value <= 0:
            _fail(name, value, "must be > 0")
        if value < 0:
            _fail(name, value, "must be >= 0")
    for name in POSITIVE_FLOATS + NON_NEGATIVE_FLOATS:
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _fail(name, value, "must be a number")
        if name in POSITIVE_FLOATS and not value > 0:
            _fail(name, value, "must be > 0")
        if not value >= 0:
            _fail(name, value, "must be >= 0")
    for name in BOOLS:
        if not isinstance(getattr(cfg, name), bool):
            _fail(name, getattr(cfg, name), "must be true or false")


def _check_choices(cfg: "ModelConfig") -> None:
    for name, choices in (("attention", ATTENTION_CHOICES), ("qk_norm", QK_NORM_CHOICES),
                          ("rope_scaling_type", ROPE_SCALING_CHOICES), ("dispatch", DISPATCH_CHOICES)):
        if getattr(cfg, name) not in choices:
            _fail(name, getattr(cfg, name), f"must be one of {', '.join(choices)}")


def _check_attention(cfg: "ModelConfig") -> None:
    if cfg.attention == "mla":
        _check_latent_attention(cfg)
        return
    for name in ("q_lora_rank", "mla_absorb"):
        if getattr(cfg, name):
            _fail(name, getattr(cfg, name), "needs attention='mla'")
    if cfg.head_dim is None and cfg.hidden_size % cfg.n_heads != 0:
        _fail("hidden_size", cfg.hidden_size, f"is not divisible by n_heads={cfg.n_heads} (or set head_dim explicitly)")
    n_kv_heads = cfg.n_kv_heads or cfg.n_heads
    if cfg.n_heads % n_kv_heads != 0:
        _fail("n_kv_heads", n_kv_heads, f"does not divide n_heads={cfg.n_heads} (grouped-query attention needs whole groups)")
    head_dim = cfg.head_dim or cfg.hidden_size // cfg.n_heads
    if head_dim % 2 != 0:
        _fail("head_dim", head_dim, "must be even (RoPE rotates pairs of dimensions)")


def _check_latent_attention(cfg: "ModelConfig") -> None:
    for name in ("n_kv_heads", "head_dim"):
        if getattr(cfg, name) is not None:
            _fail(name, getattr(cfg, name),
                  "has no meaning with attention='mla' (leave it unset; MLA caches one latent)")
    if cfg.qk_norm != "none":
        _fail("qk_norm", cfg.qk_norm, "must be 'none' with attention='mla' (MLA normalises its latents instead)")
    if cfg.qk_rope_head_dim % 2 != 0:
        _fail("qk_rope_head_dim", cfg.qk_rope_head_dim, "must be even (RoPE rotates pairs of dimensions)")


def _check_rope(cfg: "ModelConfig") -> None:
    if cfg.rope_scaling_type == "none":
        defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.name in YARN_FIELDS}
        for name in YARN_FIELDS:
            if getattr(cfg, name) != defaults[name]:
                _fail(name, getattr(cfg, name), "has no effect unless rope_scaling_type='yarn'")
        return
    if cfg.rope_original_max_position_embeddings is None:
        _fail("rope_original_max_position_embeddings", None, "must be set when rope_scaling_type='yarn'")
    if cfg.rope_scaling_factor < 1:
        _fail("rope_scaling_factor", cfg.rope_scaling_factor, "must be >= 1 (YaRN extends the context)")


def _check_experts(cfg: "ModelConfig") -> None:
    if cfg.router not in ROUTERS:
        _fail("router", cfg.router, f"is not a known router; choose one of: {', '.join(sorted(ROUTERS))}")
    if cfg.shared_expert_intermediate_size is not None and cfg.n_shared_experts == 0:
        _fail("shared_expert_intermediate_size", cfg.shared_expert_intermediate_size, "needs n_shared_experts >= 1")
    if cfg.shared_expert_gate and cfg.n_shared_experts == 0:
        _fail("shared_expert_gate", True, "needs a shared expert (n_shared_experts >= 1)")
    if cfg.n_routed_experts == 0:
        if cfg.moe_layer_indices:
            _fail("moe_layer_indices", cfg.moe_layer_indices, "needs n_routed_experts > 0")
        return
    if cfg.n_activated_experts < 1:
        _fail("n_activated_experts", cfg.n_activated_experts, "must be >= 1")
    if cfg.n_activated_experts > cfg.n_routed_experts:
        _fail("n_activated_experts", cfg.n_activated_experts, f"exceeds n_routed_experts={cfg.n_routed_experts} (must be <= it)")
    if cfg.router == "switch" and cfg.n_activated_experts != 1:
        _fail("n_activated_experts", cfg.n_activated_experts, "must be 1 for router='switch' (top-1 routing)")
    if cfg.router == "gshard" and cfg.n_activated_experts != 2:
        _fail("n_activated_experts", cfg.n_activated_experts, "must be 2 for router='gshard' (top-2 routing)")
    _check_groups(cfg)


def _check_groups(cfg: "ModelConfig") -> None:
    if cfg.n_routed_experts % cfg.n_group != 0:
        _fail("n_routed_experts", cfg.n_routed_experts, f"is not divisible by n_group={cfg.n_group}")
    if cfg.topk_group > cfg.n_group:
        _fail("topk_group", cfg.topk_group, f"exceeds n_group={cfg.n_group} (must be <= it)")
    if cfg.n_group > 1:
        if cfg.router not in ("softmax_topk", "sigmoid_topk"):
            _fail("n_group", cfg.n_group, f"> 1 needs router softmax_topk or sigmoid_topk, not {cfg.router!r}")
        reachable = cfg.topk_group * (cfg.n_routed_experts // cfg.n_group)
        if cfg.n_activated_experts > reachable:
            _fail("n_activated_experts", cfg.n_activated_experts, f"exceeds the {reachable} experts in topk_group={cfg.topk_group} groups")
        if cfg.router == "sigmoid_topk" and cfg.n_routed_experts // cfg.n_group < 2:
            _fail("n_group", cfg.n_group, "leaves < 2 experts per group; sigmoid_topk scores a group by its top-2 sum")
    if cfg.n_routed_experts % cfg.n_devices != 0:
        _fail("n_devices", cfg.n_devices, f"does not divide n_routed_experts={cfg.n_routed_experts}")


def _check_layers(cfg: "ModelConfig") -> None:
    if cfg.first_k_dense_replace > cfg.n_layers:
        _fail("first_k_dense_replace", cfg.first_k_dense_replace, f"exceeds n_layers={cfg.n_layers}")
    indices = cfg.moe_layer_indices
    if indices is None:
        return
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        _fail("moe_layer_indices", indices, "must be a list of integers")
    bad = [i for i in indices if not 0 <= i < cfg.n_layers]
    if bad:
        _fail("moe_layer_indices", indices, f"has out-of-range entries {bad} (allowed: 0..{cfg.n_layers - 1})")
    if len(set(indices)) != len(indices):
        _fail("moe_layer_indices", indices, "has duplicate entries")


def validate(cfg: "ModelConfig") -> None:
    """Raise ValueError on the first bad value or combination."""
    _check_types(cfg)
    _check_choices(cfg)
    _check_attention(cfg)
    _check_rope(cfg)
    _check_experts(cfg)
    _check_layers(cfg)
