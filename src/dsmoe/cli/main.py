"""The `dsmoe` command: thin wrappers over library functions."""

from __future__ import annotations

import argparse
import sys

from dsmoe.cli import convert_cmd, demo_cmd, eval_cmd, generate_cmd, params_cmd, train_cmd
from dsmoe.train.tensorboard import MissingDependencyError

COMMANDS = {"demo": demo_cmd, "train": train_cmd, "eval": eval_cmd, "generate": generate_cmd, "params": params_cmd,
            "convert": convert_cmd}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsmoe", description="DeepSeekMoE-style MoE language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0],
                                            description=module.__doc__))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    except (ValueError, FileNotFoundError, MissingDependencyError) as error:  # bad input or setup: no traceback
        print(f"dsmoe {args.command}: error: {error}", file=sys.stderr)
        return 2
