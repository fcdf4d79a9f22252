"""Evaluate a run's latest checkpoint: loss, perplexity, bits per byte, per domain."""

from __future__ import annotations

import argparse

from dsmoe.cli.device_option import add_device_option
from dsmoe.eval.run_eval import evaluate_run
from dsmoe.runtime.devices import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--data", help="score all the text of these files (a file, directory, glob or built-in "
                        "corpus; one domain per file) instead of the run's validation split")
    parser.add_argument("--max-batches", type=int, default=None, help="cap on batches per domain")
    add_device_option(parser, "the model is scored: on a GPU with native bf16 in the run's train.dtype (bf16 "
                      "autocast for a bf16 run), elsewhere in float32")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    evaluation = evaluate_run(args.run, args.data, args.max_batches, device)
    print(f"scored {evaluation.scored}")
    print(f"all domains: {evaluation.result.summary()}")
    for name, domain in evaluation.result.per_domain.items():
        print(f"  {name:<14} {domain.summary()}")
    return 0
