"""Evaluate a run's latest checkpoint: loss, perplexity, bits per byte, per domain."""

from __future__ import annotations

import argparse

from dsmoe.eval.run_eval import evaluate_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--data", help="evaluate on this corpus instead of the run's validation split")
    parser.add_argument("--max-batches", type=int, default=None, help="cap on batches per domain")


def run(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, args.data, args.max_batches)
    print(f"all domains: {result.summary()}")
    for name, domain in result.per_domain.items():
        print(f"  {name:<14} {domain.summary()}")
    return 0
