"""Names a config may choose for a pluggable part, each mapped to the class that implements it.

The ground floor, beside the config: validation reads the names, and each router's traits, without importing any
implementation (so the config imports nothing above it); a class is imported only when it is first looked up, i.e.
when a model is built. Adding a router is one line in ROUTERS, its traits included; code outside the package
registers its own with `ROUTERS.register("name", MyRouter)`, which reads the traits the class declares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass


def import_path(path: str) -> type:
    """The class a "module:Class" path names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Mapping[str, type]):
    """A name -> class mapping whose entries may be "module:Class" paths, imported on first lookup."""

    def __init__(self, kind: str, entries: dict[str, str | type]):
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = import_path(entry)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, name: str, entry: str | type) -> None:
        """Add `name`; an existing name is an error (unregister it first to replace it)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        del self._entries[name]


@dataclass(frozen=True)
class RouterTraits:
    """What a router is, as the code outside dsmoe.routers asks it (never by the router's name). A router class
    declares its traits as `traits`; the defaults describe a plain top-k token-choice router with a gate."""

    has_gate: bool = True  # learns a gate weight [gate rows, hidden] (a fixed hash table has none)
    token_choice: bool = True  # each token chooses at most top_k experts (not so in expert choice or Soft MoE)
    slot_based: bool = False  # experts read slots that mix a sequence's tokens: no token-expert pairs to send
    fixed_top_k: int | None = None  # the one n_activated_experts its routing is defined for (Switch: 1, GShard: 2)
    group_score: str | None = None  # group-limited (n_group > 1), groups scored by this rule by default; None: not
    device_dropping: bool = False  # honours device_capacity_factor (DeepSeek-V2 Sec. 2.2.4)
    renormalises: bool = False  # norm_topk_prob's default: its paper renormalises the top-k weights
    importance_load_balance: bool = False  # reads noisy_topk_balance (Shazeer et al. 2017's importance and load)
    scoring_func: str | None = None  # DeepSeek's gate scoring_func: "softmax" (V2), "sigmoid" (V3), "sqrtsoftplus" (V4)
    sinkhorn_balanced: bool = False  # chooses its training experts by a Sinkhorn plan (reads sinkhorn_max_iterations
    # and sinkhorn_tol) and, so balanced, adds no expert-level loss (aux_loss_alpha and balance_scope unread)

    @property
    def group_limited(self) -> bool:
        return self.group_score is not None


class RouterRegistry(Registry):
    """Router names, each with its RouterTraits, which validation reads without importing the router."""

    def __init__(self, entries: dict[str, tuple[str | type, RouterTraits]]):
        super().__init__("router", {name: entry for name, (entry, _) in entries.items()})
        self._traits = {name: traits for name, (_, traits) in entries.items()}

    def traits(self, name: str) -> RouterTraits:
        return self._traits[name]

    def having(self, trait: Callable[[RouterTraits], object]) -> list[str]:
        """The names whose traits satisfy `trait`, e.g. ROUTERS.having(lambda t: t.group_limited)."""
        return [name for name, traits in self._traits.items() if trait(traits)]

    def register(self, name: str, entry: str | type, traits: RouterTraits | None = None) -> None:
        """Add `name`; `traits` default to the class's own (a "module:Class" path is imported to read them)."""
        if traits is None:
            traits = (import_path(entry) if isinstance(entry, str) else entry).traits
        super().register(name, entry)
        self._traits[name] = traits

    def unregister(self, name: str) -> None:
        super().unregister(name)
        del self._traits[name]


ROUTERS = RouterRegistry({
    "softmax_topk": ("dsmoe.routers.softmax_topk:SoftmaxTopKRouter",
                     RouterTraits(group_score="max", device_dropping=True, scoring_func="softmax")),
    "sigmoid_topk": ("dsmoe.routers.sigmoid_topk:SigmoidTopKRouter",
                     RouterTraits(group_score="top2_sum", device_dropping=True, renormalises=True,
                                  scoring_func="sigmoid")),
    "sqrtsoftplus_topk": ("dsmoe.routers.sqrtsoftplus_topk:SqrtSoftplusTopKRouter",
                          RouterTraits(group_score="top2_sum", device_dropping=True, renormalises=True,
                                       scoring_func="sqrtsoftplus")),
    "noisy_topk": ("dsmoe.routers.noisy_topk:NoisyTopKRouter", RouterTraits(importance_load_balance=True)),
    "switch": ("dsmoe.routers.capacity:SwitchRouter", RouterTraits(fixed_top_k=1)),
    "gshard": ("dsmoe.routers.capacity:GShardRouter", RouterTraits(fixed_top_k=2)),
    "hash": ("dsmoe.routers.hash_router:HashRouter", RouterTraits(has_gate=False)),
    "expert_choice": ("dsmoe.routers.expert_choice:ExpertChoiceRouter", RouterTraits(token_choice=False)),
    "soft_moe": ("dsmoe.routers.soft_moe:SoftMoERouter", RouterTraits(token_choice=False, slot_based=True)),
    "sinkhorn": ("dsmoe.routers.sinkhorn:SinkhornRouter", RouterTraits(sinkhorn_balanced=True)),
})
