"""The quickstart's demo: train the tiny DeepSeekMoE on Tiny Shakespeare for a few minutes.
Then show validation loss and bits per byte, the per-layer expert load, a generated sample and the run
directory; --compare-dense trains the dense counterpart too (in Python: dsmoe.demo.run_demo). Trains and samples
on --device."""

from __future__ import annotations

import argparse

from dsmoe.cli.device_option import add_device_option
from dsmoe.cli.exit_codes import for_stop
from dsmoe.cli.shortcuts import add_shortcuts, check_shortcuts, given_shortcuts
from dsmoe.demo import run_demo
from dsmoe.field_rules import POSITIVE
from dsmoe.runtime.devices import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="the whole demo's time: training, then its report (default: 5); it sets "
                             "train.time_budget_min to the training's share")
    parser.add_argument("--out", help="run directory (default: runs/demo-<date>-<time>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one field of the demo's config, dsmoe/configs/tiny.toml")
    parser.add_argument("--compare-dense", action="store_true",
                        help="then train the dense model of the same activated parameters the same way for the same "
                             "time, into <out>-dense, and print the two side by side (twice the time)")
    add_device_option(parser, "it trains and samples, the same as --set train.device=DEVICE (in train.dtype)",
                      default=None, default_help="auto, or --set train.device")
    add_shortcuts(parser, ("--seed",))


def run(args: argparse.Namespace) -> int:
    if args.device is not None:
        resolve_device(args.device)  # before the step is timed or anything is written
    POSITIVE.check("--minutes", args.minutes)
    shortcuts = given_shortcuts(args, ("--seed",))
    check_shortcuts({**shortcuts, "--minutes": ("train.time_budget_min", args.minutes)}, args.overrides)
    result = run_demo(args.minutes, args.out, [*args.overrides, *shortcuts.values()], args.compare_dense,
                      args.device or "auto")
    return for_stop(result.stopped_early)
