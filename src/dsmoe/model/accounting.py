"""Parameter accounting derived from the module structure on the meta device (no weights allocated)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dsmoe.config import ModelConfig

COMPONENTS = ("embeddings", "attention", "dense_ffn", "shared_experts", "routed_experts", "router", "norms", "mtp")


@dataclass
class ParamCount:
    """Total and per-token activated parameters, overall and by component.

    The papers count "activated" two ways, and the table prints both:
    - "all" (DeepSeekMoE's convention, its Tables 1, 3 and 6): every parameter, the whole input embedding and
      the MTP modules activated too.
    - "main model" (DeepSeek-V2's and V3's: V2-Lite's 2.4B, V3's 671B / 37B, whose README_WEIGHTS.md says 36.6B
      "including 0.9B for the output Head"): without the MTP modules, which V3 reports apart, and activated
      without the input embedding, of which a token reads one row (a tied embedding is the head, and counts).
    """

    total: int
    activated: int
    by_component: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (total, activated)
    input_embedding: int = 0  # parameters only looked up (an untied embed_tokens), never multiplied

    @property
    def main_model(self) -> tuple[int, int]:
        """(total, activated) as DeepSeek-V2 and V3 report them: no MTP modules, no input embedding activated."""
        mtp_total, mtp_activated = self.by_component.get("mtp", (0, 0))
        return self.total - mtp_total, self.activated - mtp_activated - self.input_embedding

    def table(self) -> str:
        rows = [f"{'component':<16}{'total':>18}{'activated':>18}"]
        rows += [f"{name:<16}{t:>18,}{a:>18,}" for name, (t, a) in self.by_component.items()]
        rows.append(f"{'all':<16}{self.total:>18,}{self.activated:>18,}")
        rows.append(f"{'main model':<16}{self.main_model[0]:>18,}{self.main_model[1]:>18,}")
        rows.append("all: DeepSeekMoE's count; main model: DeepSeek-V2/V3's, without the MTP modules and, in")
        rows.append("activated, without the input embedding lookup")
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
    lookup_only = 0 if config.tie_word_embeddings else model.get_parameter("embed_tokens.weight").numel()
    return ParamCount(sum(totals.values()), sum(activated.values()), by_component, lookup_only)


def count_params(config: ModelConfig) -> ParamCount:
    """Build the model on the meta device and count its parameters."""
    from dsmoe.model.transformer import DeepSeekMoEForCausalLM

    with torch.device("meta"):
        model = DeepSeekMoEForCausalLM(config)
    return count_module_params(model, config)
