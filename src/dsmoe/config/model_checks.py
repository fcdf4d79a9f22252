"""Validation of ModelConfig, run once at construction; every message names field, value, rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from dsmoe.field_rules import (
    COUNT,
    FLAG,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    FieldError,
    Rule,
    check_fields,
    choice,
    optional,
)
from dsmoe.registry import ROUTERS, RouterTraits

if TYPE_CHECKING:  # the config imports this module: the ground floor imports nothing above it
    from dsmoe.config import ModelConfig

YARN_FIELDS = ("rope_scaling_factor", "rope_original_max_position_embeddings", "rope_beta_fast", "rope_beta_slow",
               "rope_mscale", "rope_mscale_all_dim")  # used only when rope_scaling_type="yarn"
BALANCE_SCOPES = ("micro_batch", "sequence", "global_batch")  # the tokens whose counts give f_i (see ModelConfig)
SEQ_BALANCE_COUNTS = ("chosen", "unbiased_topk")  # what f_i counts in the sequence-wise loss (see ModelConfig)
GROUP_SCORES = ("max", "top2_sum", "topk_sum")  # how a group-limited router scores a group (see ModelConfig)

FIELD_RULES = dict(  # one rule per field, in ModelConfig's order; the cross-field rules follow
    # sizes
    vocab_size=POSITIVE_INT, hidden_size=POSITIVE_INT, n_layers=POSITIVE_INT, n_heads=POSITIVE_INT,
    n_kv_heads=optional(POSITIVE_INT), head_dim=optional(POSITIVE_INT),  # None: derived
    max_seq_len=POSITIVE_INT, rope_theta=POSITIVE, norm_eps=POSITIVE,
    # attention
    attention=choice(("mha", "mla")), attention_bias=FLAG, o_proj_bias=FLAG,
    qk_norm=choice(("none", "head", "full")), q_lora_rank=optional(POSITIVE_INT),
    kv_lora_rank=POSITIVE_INT, qk_nope_head_dim=POSITIVE_INT, qk_rope_head_dim=POSITIVE_INT,
    v_head_dim=POSITIVE_INT, mla_absorb=FLAG,
    # rotary position embedding
    rope_interleave=FLAG, rope_scaling_type=choice(("none", "yarn")), rope_scaling_factor=POSITIVE,
    rope_original_max_position_embeddings=optional(POSITIVE_INT), rope_beta_fast=POSITIVE,
    rope_beta_slow=POSITIVE, rope_mscale=NON_NEGATIVE, rope_mscale_all_dim=NON_NEGATIVE,
    # feed-forward layers
    intermediate_size=POSITIVE_INT, moe_intermediate_size=POSITIVE_INT, n_routed_experts=COUNT,
    n_shared_experts=COUNT, shared_expert_intermediate_size=optional(POSITIVE_INT), shared_expert_gate=FLAG,
    n_activated_experts=POSITIVE_INT, first_k_dense_replace=COUNT, moe_layer_freq=POSITIVE_INT,
    moe_layer_indices=optional(Rule("integers")), swiglu_limit=optional(POSITIVE),
    # routing
    router=choice(ROUTERS), n_hash_layers=COUNT, norm_topk_prob=optional(FLAG), routed_scaling_factor=POSITIVE,
    n_group=POSITIVE_INT, topk_group=POSITIVE_INT, group_score=optional(choice(GROUP_SCORES)),
    device_capacity_factor=optional(POSITIVE),
    never_drop_share=Rule("number", "[0, 1]"), capacity_factor=POSITIVE, sinkhorn_max_iterations=POSITIVE_INT,
    sinkhorn_tol=POSITIVE, soft_moe_normalise=FLAG,
    expert_kernel=choice(("auto", "grouped_mm", "loop")),
    # balance losses
    aux_loss_alpha=NON_NEGATIVE, device_balance_alpha=NON_NEGATIVE, comm_balance_alpha=NON_NEGATIVE,
    n_devices=POSITIVE_INT, balance_scope=choice(BALANCE_SCOPES), seq_balance_count=choice(SEQ_BALANCE_COUNTS),
    noisy_topk_balance=choice(("importance_load", "expert_level")), importance_loss_weight=NON_NEGATIVE,
    load_loss_weight=NON_NEGATIVE, z_loss_coef=NON_NEGATIVE, bias_update_speed=NON_NEGATIVE,
    # multi-token prediction, embeddings and initialisation
    n_mtp_modules=COUNT, mtp_loss_weight=NON_NEGATIVE, tie_word_embeddings=FLAG, init_std=POSITIVE,
    # regularisation
    dropout=Rule("number", "[0, 1)"),
)


def _fail(name: str, value, rule: str) -> None:
    raise FieldError(name, value, rule)


def _routers_that(trait: Callable[[RouterTraits], object]) -> str:
    """The registered routers having a trait, for a message: "softmax_topk, sigmoid_topk"."""
    return ", ".join(ROUTERS.having(trait))


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
    if cfg.shared_expert_intermediate_size is not None and cfg.n_shared_experts == 0:
        _fail("shared_expert_intermediate_size", cfg.shared_expert_intermediate_size, "needs n_shared_experts >= 1")
    if cfg.shared_expert_gate and cfg.n_shared_experts == 0:
        _fail("shared_expert_gate", True, "needs a shared expert (n_shared_experts >= 1)")
    if cfg.n_routed_experts == 0:
        if cfg.moe_layer_indices:
            _fail("moe_layer_indices", cfg.moe_layer_indices, "needs n_routed_experts > 0")
        return
    if cfg.n_activated_experts > cfg.n_routed_experts:
        _fail("n_activated_experts", cfg.n_activated_experts, f"exceeds n_routed_experts={cfg.n_routed_experts} (must be <= it)")
    top_k = ROUTERS.traits(cfg.router).fixed_top_k
    if top_k is not None and cfg.n_activated_experts != top_k:
        _fail("n_activated_experts", cfg.n_activated_experts, f"must be {top_k} for router={cfg.router!r} "
              f"(top-{top_k} routing)")
    _check_groups(cfg)


def _check_groups(cfg: "ModelConfig") -> None:
    if cfg.n_routed_experts % cfg.n_group != 0:
        _fail("n_routed_experts", cfg.n_routed_experts, f"is not divisible by n_group={cfg.n_group}")
    if cfg.topk_group > cfg.n_group:
        _fail("topk_group", cfg.topk_group, f"exceeds n_group={cfg.n_group} (must be <= it)")
    traits = ROUTERS.traits(cfg.router)
    if cfg.n_group > 1:
        if not traits.group_limited:
            _fail("n_group", cfg.n_group, f"> 1 needs a group-limited router "
                  f"({_routers_that(lambda t: t.group_limited)}), not {cfg.router!r}")
        reachable = cfg.topk_group * (cfg.n_routed_experts // cfg.n_group)
        if cfg.n_activated_experts > reachable:
            _fail("n_activated_experts", cfg.n_activated_experts, f"exceeds the {reachable} experts in topk_group={cfg.topk_group} groups")
        scored = cfg.group_score_size
        if cfg.n_routed_experts // cfg.n_group < scored:
            _fail("n_group", cfg.n_group, f"leaves < {scored} experts per group; {cfg.router} scores a group by the "
                  f"sum of its best {scored} (group_score={cfg.group_score_rule!r})")
    elif cfg.group_score is not None:
        _fail("group_score", cfg.group_score, "has no effect unless n_group > 1")
    if cfg.n_routed_experts % cfg.n_devices != 0:
        _fail("n_devices", cfg.n_devices, f"does not divide n_routed_experts={cfg.n_routed_experts}")
    if cfg.device_capacity_factor is not None and not traits.device_dropping:
        _fail("device_capacity_factor", cfg.device_capacity_factor, f"needs a router with device-level token "
              f"dropping ({_routers_that(lambda t: t.device_dropping)}), not {cfg.router!r}")


def _check_router_options(cfg: "ModelConfig") -> None:
    """A router's own fields, changed from their defaults, need a router that reads them."""
    traits = ROUTERS.traits(cfg.router)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name in ("sinkhorn_max_iterations", "sinkhorn_tol"):
        if getattr(cfg, name) != defaults[name] and not traits.sinkhorn_balanced:
            _fail(name, getattr(cfg, name), f"has no effect unless the router balances by Sinkhorn "
                  f"({_routers_that(lambda t: t.sinkhorn_balanced)}), not {cfg.router!r}")
    if cfg.soft_moe_normalise and not traits.slot_based:
        _fail("soft_moe_normalise", True, f"needs a slot-based router ({_routers_that(lambda t: t.slot_based)}), "
              f"not {cfg.router!r}")


def _check_layers(cfg: "ModelConfig") -> None:
    if cfg.first_k_dense_replace > cfg.n_layers:
        _fail("first_k_dense_replace", cfg.first_k_dense_replace, f"exceeds n_layers={cfg.n_layers}")
    indices = cfg.moe_layer_indices
    if indices is None:
        return
    bad = [i for i in indices if not 0 <= i < cfg.n_layers]
    if bad:
        _fail("moe_layer_indices", indices, f"has out-of-range entries {bad} (allowed: 0..{cfg.n_layers - 1})")
    if len(set(indices)) != len(indices):
        _fail("moe_layer_indices", indices, "has duplicate entries")


def _check_hash_layers(cfg: "ModelConfig") -> None:
    if cfg.n_hash_layers == 0:
        return
    if cfg.n_hash_layers > len(cfg.moe_layers):
        _fail("n_hash_layers", cfg.n_hash_layers, f"exceeds the {len(cfg.moe_layers)} MoE layers "
              f"(moe_layers={cfg.moe_layers})")
    if ROUTERS.traits(cfg.router).scoring_func is None:
        _fail("n_hash_layers", cfg.n_hash_layers, f"> 0 needs a router whose gate scores the experts "
              f"({_routers_that(lambda t: t.scoring_func is not None)}) to weight them, not {cfg.router!r}")


def _check_balance(cfg: "ModelConfig") -> None:
    if cfg.comm_balance_alpha > 0 and not cfg.n_group == cfg.n_devices > 1:
        _fail("comm_balance_alpha", cfg.comm_balance_alpha, "needs n_group = n_devices > 1 (the groups are the "
              f"devices a token is sent to), not n_group={cfg.n_group}, n_devices={cfg.n_devices}")
    if cfg.seq_balance_count != "chosen" and cfg.balance_scope != "sequence":
        _fail("seq_balance_count", cfg.seq_balance_count, "has no effect unless balance_scope='sequence'")
    if ROUTERS.traits(cfg.router).sinkhorn_balanced and cfg.balance_scope != "micro_batch":
        _fail("balance_scope", cfg.balance_scope, f"must be 'micro_batch' with router={cfg.router!r} (its Sinkhorn "
              "assignment is balanced without the expert-level loss, so no scope of that loss is read)")
    reads_it = ROUTERS.traits(cfg.router).importance_load_balance
    if not reads_it or cfg.noisy_topk_balance != "importance_load" or cfg.n_routed_experts == 0:
        return
    if cfg.balance_scope != "micro_batch":
        _fail("balance_scope", cfg.balance_scope, "must be 'micro_batch' with noisy_topk_balance='importance_load' "
              "(Importance and Load are sums over the batch of one forward)")
    if cfg.n_activated_experts >= cfg.n_routed_experts:
        _fail("n_activated_experts", cfg.n_activated_experts, f"must be < n_routed_experts={cfg.n_routed_experts} for "
              "noisy_topk_balance='importance_load' (the load estimator compares with the k-th other expert)")


def validate(cfg: "ModelConfig") -> None:
    """Raise ValueError on the first bad value or combination."""
    check_fields(cfg, FIELD_RULES)
    _check_attention(cfg)
    _check_rope(cfg)
    _check_experts(cfg)
    _check_router_options(cfg)
    _check_layers(cfg)
    _check_hash_layers(cfg)
    _check_balance(cfg)
