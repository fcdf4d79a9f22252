"""Parameters by component, FLOPs per token, memory and KV-cache estimates, expert combinations."""

from __future__ import annotations

import argparse

from dsmoe import presets
from dsmoe.field_rules import POSITIVE_INT
from dsmoe.model.estimates import estimate_costs
from dsmoe.runs import RunConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="run config TOML (its [model] section is used)")
    source.add_argument("--preset", choices=presets.names(), help="a named preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="model.KEY=VALUE")
    parser.add_argument("--batch", type=int, default=1, help="sequences per step (memory estimate)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: max_seq_len)")
    parser.add_argument("--dtype", default="bfloat16", help="weight dtype for memory (float32, bfloat16)")


def run(args: argparse.Namespace) -> int:
    POSITIVE_INT.check("--batch", args.batch)
    if args.seq_len is not None:
        POSITIVE_INT.check("--seq-len", args.seq_len)
    if args.preset:
        config = RunConfig.from_dict({"model": {"preset": args.preset}}, args.overrides).model
    else:
        config = RunConfig.load(args.config, args.overrides).model
    estimate = estimate_costs(config, args.batch, args.seq_len or config.max_seq_len, args.dtype)
    print(estimate.params.table())
    print()
    print(estimate.table())
    return 0
