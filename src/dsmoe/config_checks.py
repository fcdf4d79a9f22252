"""Validation of ModelConfig, run once at construction; every message names field, value, rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsmoe.config import ModelConfig

OPTIONAL_INTS = ("n_kv_heads", "head_dim")  # None: derived from n_heads and hidden_size
POSITIVE_INTS = ("vocab_size", "hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim", "max_seq_len", "intermediate_size", "moe_intermediate_size", "moe_layer_freq",
                 "n_group", "topk_group", "n_devices")
NON_NEGATIVE_INTS = ("n_routed_experts", "n_shared_experts", "first_k_dense_replace")
POSITIVE_FLOATS = ("rope_theta", "norm_eps", "capacity_factor", "init_std", "routed_scaling_factor")
NON_NEGATIVE_FLOATS = ("aux_loss_alpha", "device_balance_alpha", "z_loss_coef", "bias_update_speed")
BOOLS = ("norm_topk_prob", "seq_aux", "tie_word_embeddings")


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


def _check_attention(cfg: "ModelConfig") -> None:
    if cfg.head_dim is None and cfg.hidden_size % cfg.n_heads != 0:
        _fail("hidden_size", cfg.hidden_size, f"is not divisible by n_heads={cfg.n_heads} (or set head_dim explicitly)")
    n_kv_heads = cfg.n_kv_heads or cfg.n_heads
    if cfg.n_heads % n_kv_heads != 0:
        _fail("n_kv_heads", n_kv_heads, f"does not divide n_heads={cfg.n_heads} (grouped-query attention needs whole groups)")
    head_dim = cfg.head_dim or cfg.hidden_size // cfg.n_heads
    if head_dim % 2 != 0:
        _fail("head_dim", head_dim, "must be even (RoPE rotates pairs of dimensions)")


def _check_experts(cfg: "ModelConfig") -> None:
    from dsmoe.routers import ROUTERS

    if cfg.router not in ROUTERS:
        _fail("router", cfg.router, f"is not a known router; choose one of: {', '.join(sorted(ROUTERS))}")
    from dsmoe.config import DISPATCH_CHOICES

    if cfg.dispatch not in DISPATCH_CHOICES:
        _fail("dispatch", cfg.dispatch, f"must be one of {', '.join(DISPATCH_CHOICES)}")
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
    _check_attention(cfg)
    _check_experts(cfg)
    _check_layers(cfg)
