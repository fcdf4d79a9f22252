"""Evaluate a run's latest checkpoint: loss, perplexity, bits per byte, per domain."""

from __future__ import annotations

import argparse

from dsmoe.eval.run_eval import evaluate_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--data", help="score all the text of these files (a file, directory, glob or built-in "
                        "corpus; one domain per file) instead of the run's validation split")
    parser.add_argument("--max-batches", type=int, default=None, help="cap on batches per domain")


def run(args: argparse.Namespace) -> int:
    evaluation = evaluate_run(args.run, args.data, args.max_batches)
    print(f"scored {evaluation.scored}")
    print(f"all domains: {evaluation.result.summary()}")
    for name, domain in evaluation.result.per_domain.items():
        print(f"  {name:<14} {domain.summary()}")
    return 0
