"""Train a model (or resume a run) from a TOML config with [model], [data] and [train] sections."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsmoe.cli.device_option import add_device_option
from dsmoe.cli.exit_codes import for_stop
from dsmoe.cli.shortcuts import add_shortcuts, check_shortcuts, given_shortcuts
from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs.run_config import Override
from dsmoe.runtime.devices import resolve_device
from dsmoe.train.loop import train
from dsmoe.train.resume import saved_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file (default: the tiny preset with default data/train settings)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one field, e.g. --set model.n_routed_experts=32 --set train.lr=3e-4")
    parser.add_argument("--data", help="text file, directory, glob, or built-in corpus (shakespeare, domains)")
    parser.add_argument("--out", default="runs/default", help="run directory (default: runs/default)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add_device_option(parser, "it trains, the same as --set train.device=DEVICE (in train.dtype)", default=None,
                      default_help="the config's train.device, auto unless set")
    add_shortcuts(parser)


def run(args: argparse.Namespace) -> int:
    if args.device is not None:
        resolve_device(args.device)  # here, to name --device; the training loop resolves it per rank
    shortcuts = given_shortcuts(args)
    check_shortcuts(shortcuts, args.overrides)
    overrides = [*args.overrides, *([("data.path", args.data)] if args.data is not None else []),
                 *shortcuts.values()]
    result = train(resolve_cli_config(args.config, overrides, Path(args.out), args.resume), Path(args.out),
                   resume=args.resume)
    if result.writer:  # under torchrun, rank 0 speaks for the job (train() said where and why it stopped)
        if result.final_eval is not None:
            print(f"validation: {result.final_eval.summary()}")
        print(f"run directory: {result.run_dir}")
    return for_stop(result.stopped_early)


def resolve_cli_config(config_path: str | None, overrides: list[Override], out: Path, resume: bool) -> RunConfig:
    """--config plus --set; when resuming without --config, the run's saved config plus --set."""
    run = RunDir(out)
    if resume and config_path is None and run.config_path.is_file():
        return RunConfig.from_dict(saved_config(run).to_dict(), overrides)
    return RunConfig.load(config_path, overrides)
