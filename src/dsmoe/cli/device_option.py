"""`--device`, the same option on every command that computes: parsed as text, resolved by the command itself (a
bad or absent device is then one line on stderr, exit 2, before anything is read or written)."""

from __future__ import annotations

import argparse

from dsmoe.runtime.devices import DEVICE_CHOICES

AUTO = "auto: CUDA if available, else MPS, else the CPU"


def add_device_option(parser: argparse.ArgumentParser, what: str, default: str | None = "auto",
                      default_help: str = AUTO) -> None:
    """--device, with `what` saying what runs there (and in what precision)."""
    parser.add_argument("--device", default=default, metavar="DEVICE",
                        help=f"where {what} ({DEVICE_CHOICES}; default {default_help})")
