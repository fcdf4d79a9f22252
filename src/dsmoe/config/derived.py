"""The ModelConfig fields that, left unset (None), are derived from the others, and how they stay derived in a
copy made by dataclasses.replace."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dsmoe.registry import ROUTERS

if TYPE_CHECKING:  # the config imports this module: the ground floor imports nothing above it
    from dsmoe.config import ModelConfig

DERIVATIONS: dict[str, Callable[["ModelConfig"], Any]] = {  # what an unset field means
    "n_kv_heads": lambda config: config.n_heads,
    "head_dim": lambda config: config.hidden_size // config.n_heads,
    "norm_topk_prob": lambda config: ROUTERS.traits(config.router).renormalises,
}
DERIVED_FIELDS = tuple(DERIVATIONS)  # None = derived; kept None by to_dict, replace, save and dataclasses.replace
REPLACE_CODE = {function.__code__ for function in (dataclasses.replace, getattr(dataclasses, "_replace", None))
                if function is not None}  # dataclasses.replace, and the helper it calls from Python 3.13 on


def replaced_original(copy: "ModelConfig") -> "ModelConfig | None":
    """The config that dataclasses.replace is copying into `copy` (under construction), else None."""
    frame = sys._getframe(1)
    for _ in range(6):  # <- __post_init__ <- __init__ <- replace, with room for a subclass's own __post_init__
        frame = frame.f_back
        if frame is None:
            return None
        if frame.f_code in REPLACE_CODE:
            original = frame.f_locals[frame.f_code.co_varnames[0]]  # its first argument: `obj`, or `self` in 3.13
            return original if isinstance(original, type(copy)) else None
    return None


def undo_copied_derivations(copy: "ModelConfig") -> None:
    """dataclasses.replace passes every field back, the derived ones at their derived values, which would freeze
    them (or, for MLA's unused n_kv_heads and head_dim, be refused): those the original left unset and the caller
    did not change are unset again, so that the copy derives its own from its own fields."""
    original = replaced_original(copy)
    if original is None:
        return
    for name in original.derived_fields:
        if getattr(copy, name) == getattr(original, name):
            setattr(copy, name, None)


def derive_unset_fields(config: "ModelConfig") -> frozenset[str]:
    """Fill in the unset derived fields; returns their names."""
    unset = frozenset(name for name in DERIVED_FIELDS if getattr(config, name) is None)
    for name in unset:
        setattr(config, name, DERIVATIONS[name](config))
    return unset
