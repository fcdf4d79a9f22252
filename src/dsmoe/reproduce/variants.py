"""A suite's variants: each a few changes to one base model, so what differs is what the comparison is about.

Each variant states the FFN it activates per token and layer, and optionally the FFN it holds, in standard FFNs
of width F (routed experts K' x width plus shared experts plus dense FFN layers, over 3 x hidden x F per layer);
`matched_params_table` prints the sizes and `check_ffn_sizes` refuses a suite whose variants differ from what they
state, so matched variants stating the same activated FFN activate exactly the same FFN parameters. Router
weights (N' x hidden per MoE layer) differ with the number of experts and are shown apart; they are a fraction of
a percent of the activated parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dsmoe.config import ModelConfig
from dsmoe.model import count_params
from dsmoe.reproduce.scales import Scale

FFN_COMPONENTS = ("dense_ffn", "shared_experts", "routed_experts")


@dataclass(frozen=True)
class Variant:
    """name: the run's directory; label: how tables and plots call it; model: ModelConfig fields over the scale's
    base; train: [train] fields over the scale's recipe; paper_value: the paper's number for it (None: none);
    matched: part of the controlled comparison (False: a deliberately larger reference); activated_f, total_f:
    the FFN it activates per token and the FFN it holds, per layer in standard FFNs of width F (None: not
    stated), which check_ffn_sizes holds it to."""

    name: str
    label: str
    model: dict
    description: str
    paper_value: float | None = None
    matched: bool = True
    train: dict = field(default_factory=dict)
    activated_f: float = 2
    total_f: float | None = None

    def model_config(self, scale: Scale) -> ModelConfig:
        return ModelConfig(**{**scale.model, **self.model})


def experts(shared: int, routed: int, active: int, width: int, **more) -> dict:
    """An MoE layout: `shared` always-on experts and `active` of `routed` experts, each of width `width`."""
    return dict(n_shared_experts=shared, n_routed_experts=routed, n_activated_experts=active,
                moe_intermediate_size=width, **more)


def dense(width: int) -> dict:
    return dict(n_routed_experts=0, n_shared_experts=0, intermediate_size=width)


@dataclass(frozen=True)
class VariantParams:
    """Parameter counts of a variant; ffn_activated_f and ffn_total_f are its FFN per layer in standard FFNs of
    width F."""

    total: int
    activated: int
    ffn_activated: int
    ffn_total: int
    router: int
    ffn_activated_f: float
    ffn_total_f: float

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


def variant_params(variant: Variant, scale: Scale) -> VariantParams:
    config = variant.model_config(scale)
    count = count_params(config)
    ffn_total, ffn_activated = (sum(count.by_component[name][i] for name in FFN_COMPONENTS) for i in (0, 1))
    standard_ffns = 3 * config.hidden_size * scale.expert_width * config.n_layers  # SwiGLU's gate, up and down
    return VariantParams(count.total, count.activated, ffn_activated, ffn_total, count.by_component["router"][0],
                         ffn_activated / standard_ffns, ffn_total / standard_ffns)


def matched_params_table(variants: list[Variant], scale: Scale) -> str:
    rows = [f"{'variant':<28}{'total':>15}{'activated':>15}{'FFN activated':>15}{'FFN per layer':>15}"
            f"{'router':>9}  matched"]
    for variant in variants:
        params = variant_params(variant, scale)
        per_layer = f"{params.ffn_activated_f:g}F of {params.ffn_total_f:g}F"
        matched = f"yes, at {params.ffn_activated_f:g}F" if variant.matched else "no (a larger reference)"
        rows.append(f"{variant.label:<28}{params.total:>15,}{params.activated:>15,}{params.ffn_activated:>15,}"
                    f"{per_layer:>15}{params.router:>9,}  {matched}")
    return "\n".join(rows)


def check_ffn_sizes(variants: list[Variant], scale: Scale) -> None:
    """Refuse a suite whose variants do not activate (or hold) the FFN they state, naming them."""
    wrong = []
    for variant in variants:
        params = variant_params(variant, scale)
        if params.ffn_activated_f != variant.activated_f:
            wrong.append(f"{variant.label} activates {params.ffn_activated_f:g}F, not {variant.activated_f:g}F")
        if variant.total_f is not None and params.ffn_total_f != variant.total_f:
            wrong.append(f"{variant.label} holds {params.ffn_total_f:g}F, not {variant.total_f:g}F")
    if wrong:
        raise ValueError(f"FFN sizes per layer at F={scale.expert_width}: " + "; ".join(wrong))
