"""Shortcut flags of the commands that train: each stands for one --set (--steps N is --set train.steps=N), and a
shortcut given beside a --set of the same key with another value is an error naming both."""

from __future__ import annotations

import argparse
from typing import Any

from dsmoe.field_rules import COUNT, POSITIVE, POSITIVE_INT, Rule
from dsmoe.runs.run_config import Override, parse_override

# flag -> (the field it sets, its rule, its argparse type, its metavar, what it means)
SHORTCUTS: dict[str, tuple[str, Rule, type, str, str]] = {
    "--steps": ("train.steps", POSITIVE_INT, int, "N", "optimizer steps to run"),
    "--minutes": ("train.time_budget_min", POSITIVE, float, "M",
                  "stop (with a checkpoint) after M minutes of training"),
    "--seed": ("train.seed", COUNT, int, "S", "seed of the weights and the data order"),
}


def add_shortcuts(parser: argparse.ArgumentParser, flags: tuple[str, ...] = tuple(SHORTCUTS)) -> None:
    for flag in flags:
        target, _, kind, metavar, meaning = SHORTCUTS[flag]
        parser.add_argument(flag, type=kind, metavar=metavar,
                            help=f"{meaning}, the same as --set {target}={metavar} (default: the config's)")


def given_shortcuts(args: argparse.Namespace, flags: tuple[str, ...] = tuple(SHORTCUTS)) -> dict[str, tuple[str, Any]]:
    """{flag: (field, value)} for each of `flags` given, its value checked against the field's rule (naming the
    flag); --device too when given."""
    given = {"--device": ("train.device", args.device)} if getattr(args, "device", None) is not None else {}
    for flag in flags:
        value = getattr(args, flag.removeprefix("--"))
        if value is not None:
            target, rule, *_ = SHORTCUTS[flag]
            rule.check(flag, value)
            given[flag] = (target, value)
    return given


def check_shortcuts(shortcuts: dict[str, tuple[str, Any]], overrides: list[Override]) -> None:
    """A shortcut and a --set of the same field that differ are refused, naming both."""
    for flag, (target, given) in shortcuts.items():
        for override in overrides:
            section, key, value = parse_override(override)
            if f"{section}.{key}" == target and value != given:
                raise ValueError(f"{flag}={given!r} and --set {target}={value!r} differ: give one of them")
