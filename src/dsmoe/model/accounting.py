"""Parameter accounting derived from the module structure on the meta device (no weights allocated)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.config import ModelConfig

COMPONENTS = ("embeddings", "attention", "dense_ffn", "shared_experts", "routed_experts", "router", "norms", "mtp")


@dataclass
class ParamCount:
    """Total and per-token activated parameters, overall and by component."""

    total: int
    activated: int
    by_component: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (total, activated)

    def table(self) -> str:
        rows = [f"{'component':<16}{'total':>18}{'activated':>18}"]
        rows += [f"{name:<16}{t:>18,}{a:>18,}" for name, (t, a) in self.by_component.items()]
        rows.append(f"{'all':<16}{self.total:>18,}{self.activated:>18,}")
        return "\n".join(rows)


def component_of(name: str) -> str:
    """Which component a parameter name belongs to (everything in the MTP modules is "mtp")."""
    if name.startswith("mtp."):
        return "mtp"
    if name.startswith(("embed_tokens", "lm_head")):
        return "embeddings"
    if ".attn." in name:
        return "attention"
    if ".ffn.router." in name:
        return "router"
    if ".ffn.experts." in name:
        return "routed_experts"
    if ".ffn.shared_expert" in name:  # the fused shared experts and their gate
        return "shared_experts"
    if ".ffn." in name:
        return "dense_ffn"
    return "norms"


def count_module_params(model: nn.Module, config: ModelConfig) -> ParamCount:
    """Count an instantiated (or meta) model; routed experts (also the MTP modules') are activated in the
    ratio K'/N'. MTP modules count as activated: every training token passes through them."""
    totals = dict.fromkeys(COMPONENTS, 0)
    activated = dict.fromkeys(COMPONENTS, 0)
    for name, param in model.named_parameters():
        component = component_of(name)
        totals[component] += param.numel()
        if ".ffn.experts." in name:
            activated[component] += param.numel() * config.n_activated_experts // config.n_routed_experts
        else:
            activated[component] += param.numel()
    by_component = {c: (totals[c], activated[c]) for c in COMPONENTS}
    return ParamCount(sum(totals.values()), sum(activated.values()), by_component)


def count_params(config: ModelConfig) -> ParamCount:
    """Build the model on the meta device and count its parameters."""
    from dsmoe.model.transformer import DeepSeekMoEForCausalLM

    with torch.device("meta"):
        model = DeepSeekMoEForCausalLM(config)
    return count_module_params(model, config)
