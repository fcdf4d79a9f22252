"""Names a config may choose for a pluggable part, each mapped to the class that implements it.

The ground floor, beside the config: validation reads the names without importing any implementation (so the
config imports nothing above it), and a class is imported only when it is first looked up, i.e. when a model
is built. Adding a router is one line in ROUTERS; code outside the package registers its own with
`ROUTERS.register("name", MyRouter)` (or a "module:Class" path).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping


class Registry(Mapping[str, type]):
    """A name -> class mapping whose entries may be "module:Class" paths, imported on first lookup."""

    def __init__(self, kind: str, entries: dict[str, str | type]):
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
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


ROUTERS = Registry("router", {
    "softmax_topk": "dsmoe.routers.softmax_topk:SoftmaxTopKRouter",
    "sigmoid_topk": "dsmoe.routers.sigmoid_topk:SigmoidTopKRouter",
    "noisy_topk": "dsmoe.routers.noisy_topk:NoisyTopKRouter",
    "switch": "dsmoe.routers.capacity:SwitchRouter",
    "gshard": "dsmoe.routers.capacity:GShardRouter",
    "hash": "dsmoe.routers.hash_router:HashRouter",
    "expert_choice": "dsmoe.routers.expert_choice:ExpertChoiceRouter",
    "soft_moe": "dsmoe.routers.soft_moe:SoftMoERouter",
})
