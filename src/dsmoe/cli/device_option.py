"""`--device`, the same option on every command that computes: parsed as text, resolved by the command itself (a
bad or absent device is then one line on stderr, exit 2, before anything is read or written)."""

from __future__ import annotations

import argparse

from dsmoe.runs.run_config import Override, parse_override
from dsmoe.runtime.devices import DEVICE_CHOICES


AUTO = "auto: CUDA if available, else MPS, else the CPU"


def add_device_option(parser: argparse.ArgumentParser, what: str, default: str | None = "auto",
                      default_help: str = AUTO) -> None:
    """--device, with `what` saying what runs there (and in what precision)."""
    parser.add_argument("--device", default=default, metavar="DEVICE",
                        help=f"where {what} ({DEVICE_CHOICES}; default {default_help})")


def check_one_train_device(device: str | None, overrides: list[Override]) -> None:
    """--device of `dsmoe train` and `dsmoe demo` stands for --set train.device: both given with different values
    is an error naming them."""
    for override in overrides if device is not None else []:
        section, key, value = parse_override(override)
        if (section, key) == ("train", "device") and value != device:
            raise ValueError(f"--device={device!r} and --set train.device={value!r} differ: give one of them")
