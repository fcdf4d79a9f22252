"""The papers' controlled comparisons, each a list of variants of one base (F: a standard FFN's width, GShard's expert).

`table1` is DeepSeekMoE's Table 1 as the paper set it up: Dense, Hash Layer and Switch activate one standard FFN
per layer (0.2B activated at 2B), GShard and DeepSeekMoE two (0.3B), and the four MoEs hold the same 16F (2.0B).
`table1-equal-activated` gives Dense, Hash and Switch 2F too, so that all five activate the same compute.
GShard x1.5 and a dense FFN of DeepSeekMoE's total 16F (Table 2's Dense x16) are larger references in both.
Every variant states the FFN it activates and holds in F, and the suite refuses to run one that differs
(variants.check_ffn_sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dsmoe.reproduce.scales import Scale
from dsmoe.reproduce.variants import Variant, dense, experts

AUX = dict(aux_loss_alpha=0.01)  # DeepSeekMoE's expert-level balance factor at 2B (Sec. 4.1.2)


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    source: str  # where the paper's numbers come from
    metric: str
    build: Callable[[Scale], list[Variant]]
    expected_order: list[str] = field(default_factory=list)  # the paper's, best (lowest loss) first
    data: str = "shakespeare"  # the default --data
    probe: bool = False  # run the expert-disabling probe (DeepSeekMoE Fig. 4) on the first two variants

    def variants(self, scale: Scale) -> list[Variant]:
        return self.build(scale)


def table1_layouts(scale: Scale, width_f: int) -> list[Variant]:
    """Table 1's five models and Table 2's two larger references, with Dense's FFN and the Hash and Switch
    experts `width_f` standard FFNs wide: 16 / width_f of them, so every MoE holds 16F per layer."""
    f, n_experts = scale.expert_width, 16 // width_f
    width, named = width_f * f, "F" if width_f == 1 else f"{width_f}F"
    moe = dict(activated_f=width_f, total_f=16)
    return [
        Variant("dense", "Dense", dense(width), f"one FFN of width {named} per layer", 2.060,
                activated_f=width_f, total_f=width_f),
        Variant("hash", "Hash Layer", experts(0, n_experts, 1, width, router="hash"),
                f"1 of {n_experts} experts of width {named}, chosen by a fixed hash of the token id", 1.932, **moe),
        Variant("switch", "Switch", experts(0, n_experts, 1, width, router="switch", **AUX),
                f"top-1 of {n_experts} experts of width {named}, capacity factor 1", 1.881, **moe),
        Variant("gshard", "GShard", experts(0, 16, 2, f, router="gshard", **AUX),
                "top-2 of 16 experts of width F, capacity factor 1", 1.867, activated_f=2, total_f=16),
        Variant("deepseekmoe", "DeepSeekMoE", experts(1, 63, 7, f // 4, **AUX),
                "1 shared + top-7 of 63 routed experts of width F/4", 1.808, activated_f=2, total_f=16),
        Variant("gshard_x1.5", "GShard x1.5", experts(0, 16, 2, 3 * f // 2, router="gshard", **AUX),
                "GShard with experts 1.5x as wide (Table 2)", 1.808, matched=False, activated_f=3, total_f=24),
        Variant("dense_total", "Dense, DeepSeekMoE's total", dense(16 * f),
                "one FFN as wide as all 16F of DeepSeekMoE's experts (Table 2)", 1.806, matched=False,
                activated_f=16, total_f=16),
    ]


def table1(scale: Scale) -> list[Variant]:
    """DeepSeekMoE Table 1 as the paper ran it (Sec. 4.1.3, 4.2): Dense, Hash and Switch activate one standard FFN
    (1F), GShard and DeepSeekMoE two (2F: top-2 of width F; 1 shared + 7 routed of width F/4 = 8 x F/4), and every
    MoE holds 16F (16 experts of F; 1 + 63 of F/4 = 64 x F/4). At the paper's 2B size (9 layers, hidden 1280,
    vocabulary 8,192) with paper-2b's F = 3,412 (the paper counts a standard FFN as 8 x 1280^2 parameters) every
    count rounds to Table 1's 0.2B (Dense; Hash and Switch activated), 2.0B (each MoE) and 0.3B (GShard and
    DeepSeekMoE activated), and the training FLOPs per 2K tokens, 2.88T and 4.33T, to its 2.9T and 4.3T
    (tests/reproduce/test_table1.py)."""
    return table1_layouts(scale, width_f=1)


def table1_equal_activated(scale: Scale) -> list[Variant]:
    """Table 1's comparison at equal activated compute, not the paper's setup: Dense's FFN and the Hash and
    Switch experts are 2F wide (1 of 8 of width 2F), so every matched variant activates 2F and every MoE holds
    16F; a difference then comes from routing and structure, not compute. `dsmoe reproduce table1` ran this
    until the paper's own setup became the default."""
    return table1_layouts(scale, width_f=2)


def granularity(scale: Scale) -> list[Variant]:
    """DeepSeekMoE Fig. 3: shared + routed / total experts, the same router, 16F of experts in all."""
    f = scale.expert_width
    return [
        Variant("gshard_0+2of16", "GShard 0+2/16", experts(0, 16, 2, f, **AUX), "top-2 of 16 of width F",
                total_f=16),
        Variant("shared_1+1of15", "+ shared 1+1/15", experts(1, 15, 1, f, **AUX),
                "1 shared + top-1 of 15 of width F", total_f=16),
        Variant("fine_1+3of31", "+ fine-grained 1+3/31", experts(1, 31, 3, f // 2, **AUX),
                "1 shared + top-3 of 31 of width F/2", total_f=16),
        Variant("finer_1+7of63", "finer 1+7/63", experts(1, 63, 7, f // 4, **AUX),
                "1 shared + top-7 of 63 of width F/4", total_f=16),
    ]


def shared_ratio(scale: Scale) -> list[Variant]:
    """DeepSeekMoE Sec. 4.5: 1, 2 or 4 of the 8 activated F/4 experts shared (64 of width F/4 in all)."""
    quarter = scale.expert_width // 4
    values = {1: 1.808, 2: 1.806, 4: 1.811}
    return [Variant(f"shared{k}", f"{k} shared + {8 - k} of {64 - k}", experts(k, 64 - k, 8 - k, quarter, **AUX),
                    f"{k} shared + top-{8 - k} of {64 - k} routed of width F/4", values[k], total_f=16)
            for k in (1, 2, 4)]


def specialisation(scale: Scale) -> list[Variant]:
    """DeepSeekMoE Sec. 4.5, Fig. 4: disabling the top routed experts hurts DeepSeekMoE more than GShard x1.5."""
    f = scale.expert_width
    return [Variant("deepseekmoe", "DeepSeekMoE", experts(1, 63, 7, f // 4, **AUX),
                    "1 shared + top-7 of 63 routed of width F/4"),
            Variant("gshard_x1.5", "GShard x1.5", experts(0, 16, 2, 3 * f // 2, router="gshard", **AUX),
                    "GShard with experts 1.5x as wide (the paper's pair for this probe)", matched=False,
                    activated_f=3, total_f=24)]


def balancing(scale: Scale) -> list[Variant]:
    """DeepSeek-V3 Sec. 2.1.2 and Wang et al. 2024: how balance is kept; 4 micro-batches per step so that the
    micro-batch and global-batch scopes differ (Qiu et al. 2025)."""
    f, accumulate = scale.expert_width, dict(batch_size=scale.batch_size // 4, grad_accum=4)
    layout = experts(1, 63, 7, f // 4)
    return [
        Variant("expert_loss", "softmax + expert-level loss", {**layout, **AUX}, "alpha_1 = 0.01, per micro-batch",
                train=accumulate),
        Variant("expert_loss_global", "... global-batch scope", {**layout, **AUX, "balance_scope": "global_batch"},
                "alpha_1 = 0.01 with f_i over the step's 4 micro-batches", train=accumulate),
        Variant("aux_free_bias", "sigmoid + loss-free bias", {**layout, "router": "sigmoid_topk",
                                                              "aux_loss_alpha": 0.0, "bias_update_speed": 0.001},
                "DeepSeek-V3's bias, gamma = 0.001, no balance loss", train=accumulate),
        Variant("no_balancing", "no balancing", {**layout, "aux_loss_alpha": 0.0}, "softmax top-k alone",
                train=accumulate),
    ]


# the loss-free bias's update speed in the routing suite: 10x DeepSeek-V3's 0.001 (Sec. 2.1.2), which the balancing
# suite shows cannot move the bias far enough in a tiny-scale run's 150 steps
ROUTING_BIAS_SPEED = 0.01


def routing(scale: Scale) -> list[Variant]:
    """How the router scores and balances, one layout (1 shared + 7 of 63 of width F/4): DeepSeekMoE's softmax with
    the expert-level loss, DeepSeek-V3's sigmoid with the loss-free bias (Sec. 2.1.2), DeepSeek-V4's sqrt(softplus)
    with it, the same with the first MoE layer routed by a token-id table (n_hash_layers), and BASE layers'
    Sinkhorn-balanced assignment (Lewis et al. 2021)."""
    layout = experts(1, 63, 7, scale.expert_width // 4)
    biased = dict(aux_loss_alpha=0.0, bias_update_speed=ROUTING_BIAS_SPEED, norm_topk_prob=True)
    return [
        Variant("softmax_aux", "softmax + expert-level loss", {**layout, **AUX}, "DeepSeekMoE: alpha_1 = 0.01"),
        Variant("sigmoid_bias", "sigmoid + loss-free bias (V3)", {**layout, "router": "sigmoid_topk", **biased},
                f"DeepSeek-V3's scores and bias, gamma = {ROUTING_BIAS_SPEED}"),
        Variant("sqrtsoftplus_bias", "sqrt-softplus + loss-free bias (V4)",
                {**layout, "router": "sqrtsoftplus_topk", **biased},
                f"DeepSeek-V4's scores, the same bias, gamma = {ROUTING_BIAS_SPEED}"),
        Variant("v4_hash_first", "V4 with a hash-routed first layer",
                {**layout, "router": "sqrtsoftplus_topk", **biased, "n_hash_layers": 1},
                "the first MoE layer's experts chosen by a token-id table, weighted by the gate"),
        Variant("sinkhorn", "Sinkhorn-balanced (BASE layers)", {**layout, "router": "sinkhorn", "aux_loss_alpha": 0.0},
                "top-k of a Sinkhorn-balanced plan in training, no balance loss (Megatron-Core's sinkhorn)"),
    ]


def placement(scale: Scale) -> list[Variant]:
    """Hybrid models: which layers are MoE (the dense ones activate the same 2F)."""
    f, n = scale.expert_width, scale.model["n_layers"]
    layout = {**experts(1, 63, 7, f // 4, **AUX), "intermediate_size": 2 * f}
    return [
        Variant("all_layers", "MoE in every layer", {**layout, "first_k_dense_replace": 0}, f"layers 0-{n - 1}"),
        Variant("deeper_half", "MoE in the deeper half", {**layout, "moe_layer_indices": list(range(n // 2, n))},
                f"layers {n // 2}-{n - 1}"),
        Variant("every_third", "MoE every third layer", {**layout, "moe_layer_indices": list(range(0, n, 3))},
                f"layers {list(range(0, n, 3))}"),
        Variant("first_k_dense", "first layer dense", {**layout, "first_k_dense_replace": 1},
                f"layers 1-{n - 1} (DeepSeekMoE 16B's first_k_dense_replace=1)"),
    ]


PAPER = "DeepSeekMoE (Dai et al. 2024)"
SUITES = {suite.name: suite for suite in [
    Suite("table1", "DeepSeekMoE Table 1: Dense, Hash and Switch at 1F activated, GShard and DeepSeekMoE at 2F",
          f"{PAPER} Table 1, 2B scale", "Pile validation loss", table1,
          ["deepseekmoe", "gshard", "switch", "hash", "dense"]),
    Suite("table1-equal-activated", "DeepSeekMoE Table 1's models, all five at 2F activated",
          f"{PAPER} Table 1, 2B scale (where Dense, Hash and Switch activate 1F)", "Pile validation loss",
          table1_equal_activated, ["deepseekmoe", "gshard", "switch", "hash", "dense"]),
    Suite("granularity", "DeepSeekMoE Figure 3: shared expert isolation and fine-grained segmentation",
          f"{PAPER} Figure 3 (no numbers given here)", "Pile validation loss", granularity,
          ["finer_1+7of63", "fine_1+3of31", "shared_1+1of15", "gshard_0+2of16"]),
    Suite("shared-ratio", "DeepSeekMoE Sec. 4.5: the ratio of shared to routed experts", f"{PAPER} Sec. 4.5",
          "Pile validation loss", shared_ratio, ["shared2", "shared1", "shared4"]),
    Suite("specialisation", "DeepSeekMoE Figure 4: disabling the top routed experts", f"{PAPER} Figure 4",
          "Pile loss as top experts are disabled", specialisation, data="domains", probe=True),
    Suite("balancing", "Balancing: expert-level loss, global-batch scope, loss-free bias, none",
          "DeepSeek-V3 Sec. 2.1.2 and Table 5; Wang et al. 2024; Qiu et al. 2025 (no numbers given here)",
          "validation loss and MaxVio", balancing),
    Suite("placement", "Hybrid models: where the MoE layers go", "(no paper numbers)", "validation loss",
          placement),
    Suite("routing", "Routing: softmax + loss, V3's sigmoid + bias, V4's sqrt-softplus + bias and hash layer, "
          "Sinkhorn", "DeepSeekMoE Sec. 3.3; DeepSeek-V3 Sec. 2.1.2; DeepSeek-V4 (transformers' deepseek_v4); Lewis "
          "et al. 2021 (no numbers given here)", "validation loss and MaxVio", routing),
]}


def suite_named(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"suite {name!r} does not exist; choose one of {', '.join(SUITES)}")
    return SUITES[name]
