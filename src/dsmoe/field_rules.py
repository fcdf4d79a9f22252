"""What a config field accepts, declared as one Rule per field in a table per config section, and checked at
construction. The ground floor, beside the config: it imports nothing from dsmoe.

A rule's bounds are written as its message says them ("> 0", ">= 1", "[0, 1)"), so a table reads as the
errors it raises: `steps=True must be an integer >= 1`, `val_fraction=inf must be a number in (0, 1)`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dsmoe.runtime.devices import DEVICE_CHOICES, is_device_spec


class FieldError(ValueError):
    """A bad field value, as `name=value rule`; a run config names the section too (`train.lr=...`)."""

    def __init__(self, name: str, value: Any, rule: str):
        super().__init__(f"{name}={value!r} {rule}")
        self.name, self.value, self.rule = name, value, rule

    def in_section(self, section: str) -> "FieldError":
        return FieldError(f"{section}.{self.name}", self.value, self.rule)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # a bool is an int to Python, never to a config


def _is_number(value: Any) -> bool:
    return _is_integer(value) or (isinstance(value, float) and math.isfinite(value))


KINDS = {  # kind -> (what it is, in words; the type test)
    "integer": ("an integer", _is_integer),
    "number": ("a number", _is_number),
    "bool": ("true or false", lambda value: isinstance(value, bool)),
    "string": ("a non-empty string", lambda value: isinstance(value, str) and value != ""),
    "choice": ("one of", lambda value: isinstance(value, str)),
    "integers": ("a list of integers", lambda value: isinstance(value, list) and all(map(_is_integer, value))),
    "device": (f"a device: {DEVICE_CHOICES}", is_device_spec),
}


def _within(value: float, bounds: str) -> bool:
    """Whether `value` lies in `bounds`: "> 0", ">= 1", or an interval such as "[0, 1)"."""
    if bounds.startswith(">="):
        return value >= float(bounds[2:])
    if bounds.startswith(">"):
        return value > float(bounds[1:])
    low, high = (float(limit) for limit in bounds[1:-1].split(","))
    above = value >= low if bounds[0] == "[" else value > low
    below = value <= high if bounds[-1] == "]" else value < high
    return above and below


@dataclass(frozen=True)
class Rule:
    """What one field accepts: a kind (a key of KINDS), bounds for integers and numbers, the choices of a
    "choice" (any collection, read when checked, so a registry's later entries count), and whether None is
    allowed (the field is unset)."""

    kind: str
    bounds: str = ""
    choices: Collection[str] = ()
    optional: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if not KINDS[self.kind][1](value):
            return False
        if self.kind == "choice":
            return value in self.choices
        return not self.bounds or _within(value, self.bounds)

    def describe(self) -> str:
        """The rule in words: "an integer >= 1", "a number in (0, 1)", "one of cosine, step, constant"."""
        words = [KINDS[self.kind][0]]
        if self.bounds:
            words.append(self.bounds if self.bounds[0] == ">" else f"in {self.bounds}")
        if self.kind == "choice":
            words.append(", ".join(self.choices))
        return " ".join(words) + (" (or unset)" if self.optional else "")

    def check(self, name: str, value: Any) -> None:
        if not self.allows(value):
            raise FieldError(name, value, f"must be {self.describe()}")


def optional(rule: Rule) -> Rule:
    return dataclasses.replace(rule, optional=True)


def choice(options: Collection[str]) -> Rule:
    return Rule("choice", choices=options)


POSITIVE_INT = Rule("integer", ">= 1")
COUNT = Rule("integer", ">= 0")
POSITIVE = Rule("number", "> 0")
NON_NEGATIVE = Rule("number", ">= 0")
FLAG = Rule("bool")
TEXT = Rule("string")


def check_fields(config: Any, rules: Mapping[str, Rule]) -> None:
    """Check every field of the dataclass `config` against its rule in `rules` (every field has one)."""
    for field in dataclasses.fields(config):
        rules[field.name].check(field.name, getattr(config, field.name))
