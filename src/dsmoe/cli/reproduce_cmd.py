"""Reproduce a paper's controlled comparison at small scale: train its variants over seeds, then report.

Suites: table1 (the paper's setup: Dense, Hash and Switch activate one standard FFN, GShard and DeepSeekMoE two),
table1-equal-activated (all five activate two), granularity, shared-ratio, specialisation, balancing, placement.
Every variant is derived from one base (the FFN it activates per token checked against what it states), sees the
same tokens in the same order, and trains for the same steps or the same minutes; results.json, report.md and the
plots go to --out. Rerunning the same command skips the finished runs and resumes an interrupted one. Every run
trains and is evaluated on --device, and the specialisation suite's probe runs there too.
"""

from __future__ import annotations

import argparse

from dsmoe.cli.analyze_cmd import positive_int
from dsmoe.cli.device_option import add_device_option
from dsmoe.cli.exit_codes import for_stop
from dsmoe.cli.shortcuts import check_shortcuts, given_shortcuts
from dsmoe.reproduce.plan import BUDGETS, Plan
from dsmoe.reproduce.runner import SuiteInterrupted, run_suite
from dsmoe.reproduce.scales import SCALES
from dsmoe.reproduce.suites import SUITES
from dsmoe.runtime.devices import resolve_device


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=list(SUITES),
                        help="which comparison; table1 is DeepSeekMoE Table 1's setup (Dense, Hash and Switch at one "
                        "standard FFN activated, GShard and DeepSeekMoE at two), table1-equal-activated gives all "
                        "five two")
    parser.add_argument("--scale", choices=list(SCALES), default="tiny",
                        help="tiny: minutes per suite; small: table1-equal-activated took about 21 minutes with one "
                        "seed on 2 CPU cores (default tiny)")
    parser.add_argument("--seeds", type=positive_int, default=1, help="seeds per variant (default 1)")
    parser.add_argument("--data", help="shakespeare, domains, or a text file, directory or glob (default: the "
                        "suite's, domains for specialisation, else shakespeare)")
    parser.add_argument("--budget", choices=BUDGETS, default="steps",
                        help="give every variant the same optimizer steps, or the same minutes on this machine")
    parser.add_argument("--steps", type=positive_int, help="steps per run with --budget steps (default: the scale's)")
    parser.add_argument("--minutes", type=positive_number,
                        help="minutes per run with --budget minutes (default: the scale's)")
    parser.add_argument("--out", help="suite directory (default runs/reproduce/SUITE-SCALE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a field of every run, e.g. --set train.lr=1e-3")
    add_device_option(parser, "every run trains (in its train.dtype) and the probe runs, the same as --set "
                      "train.device=DEVICE", default=None, default_help="auto, or --set train.device")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device or "auto")
    check_shortcuts(given_shortcuts(args, ()), args.overrides)
    if (args.steps is not None and args.budget != "steps") or (args.minutes is not None and args.budget != "minutes"):
        raise ValueError(f"--steps goes with --budget steps and --minutes with --budget minutes (got --budget "
                         f"{args.budget})")
    value = args.steps if args.budget == "steps" else args.minutes
    plan = Plan.make(args.suite, args.scale, args.seeds, args.data, args.budget, value, args.out,
                     tuple(args.overrides), device)
    try:
        run_suite(plan)
    except SuiteInterrupted as stopped:
        print(f"interrupted: {stopped}")
        return for_stop(stopped.reason)
    return 0
