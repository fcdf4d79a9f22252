"""A suite's variants: each a few changes to one base model, so what differs is what the comparison is about.

The matched variants activate the same FFN parameters per token (routed experts K' x width plus shared experts
plus dense FFN layers: 2 standard FFNs of width F in every layer); `matched_params_table` prints them and
`check_matched` refuses a suite whose matched variants differ. Router weights (N' x hidden per MoE layer) differ
with the number of experts and are shown apart; they are a fraction of a percent of the activated parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dsmoe.config import ModelConfig
from dsmoe.model import count_params
from dsmoe.reproduce.scales import Scale

FFN_COMPONENTS = ("dense_ffn", "shared_experts", "routed_experts")


@dataclass(frozen=True)
class Variant:
    """name: the run's directory; label: how tables and plots call it; model: ModelConfig fields over the scale's
    base; train: [train] fields over the scale's recipe; paper_value: the paper's number for it (None: none);
    matched: whether its activated FFN parameters must equal the other matched variants'."""

    name: str
    label: str
    model: dict
    description: str
    paper_value: float | None = None
    matched: bool = True
    train: dict = field(default_factory=dict)

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
    total: int
    activated: int
    ffn_activated: int
    router: int

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "activated": self.activated, "ffn_activated": self.ffn_activated,
                "router": self.router}


def variant_params(variant: Variant, scale: Scale) -> VariantParams:
    count = count_params(variant.model_config(scale))
    ffn = sum(count.by_component[name][1] for name in FFN_COMPONENTS)
    return VariantParams(count.total, count.activated, ffn, count.by_component["router"][0])


def matched_params_table(variants: list[Variant], scale: Scale) -> str:
    rows = [f"{'variant':<24}{'total':>14}{'activated':>14}{'FFN activated':>16}{'router':>10}  matched"]
    for variant in variants:
        params = variant_params(variant, scale)
        rows.append(f"{variant.label:<24}{params.total:>14,}{params.activated:>14,}{params.ffn_activated:>16,}"
                    f"{params.router:>10,}  {'yes' if variant.matched else 'no (a larger reference)'}")
    return "\n".join(rows)


def check_matched(variants: list[Variant], scale: Scale) -> None:
    """Refuse a suite whose matched variants do not activate the same FFN parameters per token, naming them."""
    matched = {variant.label: variant_params(variant, scale).ffn_activated for variant in variants if variant.matched}
    if len(set(matched.values())) > 1:
        raise ValueError("the matched variants activate different FFN parameters per token: "
                         + ", ".join(f"{label} {count:,}" for label, count in matched.items()))
