"""The `dsmoe` command: thin wrappers over library functions."""

from __future__ import annotations

import argparse
import os
import sys

import torch.distributed

from dsmoe.cli import (analyze_cmd, config_cmd, convert_cmd, demo_cmd, eval_cmd, generate_cmd, params_cmd,
                       reproduce_cmd, serve_cmd, train_cmd)
from dsmoe.cli.error_line import say_error, torchrun_rank
from dsmoe.cli.exit_codes import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED
from dsmoe.cli.parsing import Parser, parse
from dsmoe.parallel.mesh import has_joined
from dsmoe.train.loop import NonFiniteLossError
from dsmoe.train.tensorboard import MissingDependencyError

COMMANDS = {"demo": demo_cmd, "train": train_cmd, "eval": eval_cmd, "generate": generate_cmd, "params": params_cmd,
            "serve": serve_cmd, "convert": convert_cmd, "analyze": analyze_cmd, "reproduce": reproduce_cmd,
            "config": config_cmd}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dsmoe", description="DeepSeekMoE-style MoE language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0],
                                            description=module.__doc__))
    return parser


def describe(error: OSError) -> str:
    """An OS error as "FILE: reason" (a full disk, a directory where a file belongs, no permission, ...)."""
    if error.filename is None:
        return str(error)
    return f"{error.filename}: {error.strerror or error}"


# a Gloo error that does not name gloo: a collective failed by another one's timeout on the same process group
GLOO_PAIR_CLOSURE = "application timeout caused pair closure"


def collective_failed(error: RuntimeError) -> bool:
    """A peer died or hung in a torchrun job: torch's DistError, or Gloo's and NCCL's own RuntimeErrors (a Gloo
    timeout is a plain RuntimeError naming gloo, the pair closure it causes one that does not)."""
    text = str(error).lower()
    return (isinstance(error, torch.distributed.DistError) or "gloo" in text or "nccl" in text
            or GLOO_PAIR_CLOSURE in text)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every failure the user can act on ends in one line on stderr and a non-zero code. Under
    torchrun that line is said once (cli.error_line): by rank 0 for what every rank meets (a failure before the
    ranks joined, non-finite losses they agreed on), else by the rank that met it."""
    args = parse(build_parser(), sys.argv[1:] if argv is None else argv)
    prefix = f"dsmoe {args.command}"
    try:
        return COMMANDS[args.command].run(args) or 0
    except (ValueError, MissingDependencyError) as error:  # bad input or setup
        say_error(prefix, str(error), shared=not has_joined())
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # not an error of ours: quiet, and no second one when Python flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:  # unreadable or missing files, a full disk
        say_error(prefix, describe(error), shared=not has_joined())
        return EXIT_BAD_INPUT
    except NonFiniteLossError as error:
        say_error(prefix, str(error))
        return EXIT_FAILED
    except RuntimeError as error:
        if not collective_failed(error):
            raise
        rank = os.environ.get("RANK", "?")
        print(f"{prefix}: error: rank {rank}: a collective with the other ranks failed (one died, or did not answer "
              f"within parallel.timeout_s): {str(error).strip().splitlines()[-1]}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C outside the training loop, which saves and stops on its own
        if torchrun_rank() in (None, "0"):
            print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
