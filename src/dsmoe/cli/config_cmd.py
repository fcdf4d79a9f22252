"""Print every key of a configuration: its value, its default and its meaning, section by section.
Without --preset, --run or --config: the configuration `dsmoe train` starts from (the tiny preset). --markdown
writes docs/CONFIG.md, the reference of the defaults (in Python: dsmoe.config.reference)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsmoe import presets
from dsmoe.config.reference import Row, markdown, rows, show
from dsmoe.runs import RunConfig, RunDir
from dsmoe.train.resume import saved_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=presets.names(), help="the tiny preset's data and train settings with "
                        "this model")
    source.add_argument("--run", help="the config.toml of this run directory")
    source.add_argument("--config", help="this TOML file")
    source.add_argument("--markdown", action="store_true",
                        help="the defaults as Markdown: python -m dsmoe config --markdown > docs/CONFIG.md")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one field first, as dsmoe train would")


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        if args.overrides:
            raise ValueError("--markdown writes the defaults and takes no --set")
        print(markdown(rows()), end="")
        return 0
    print(text(rows(chosen_config(args))))
    return 0


def chosen_config(args: argparse.Namespace) -> RunConfig:
    if args.preset is not None:
        return RunConfig.from_dict({"model": {"preset": args.preset}}, args.overrides)
    if args.run is not None:
        run = RunDir(Path(args.run))
        if not run.config_path.is_file():
            raise ValueError(f"--run {args.run!r} is not a run directory (no {run.config_path.name})")
        return RunConfig.from_dict(saved_config(run).to_dict(), args.overrides)
    return RunConfig.load(args.config, args.overrides)


def text(table: list[Row]) -> str:
    """Aligned columns under a [section] heading each; a value other than its default is marked `*`."""
    header = ("key", "value", "default", "meaning")
    cells = [(row.section, (row.key, show(row.value) + (" *" if row.value != row.default else ""), show(row.default),
                            row.meaning)) for row in table]
    widths = [max(len(cell[i]) for cell in [header, *(c for _, c in cells)]) for i in range(3)]
    line = lambda cell: "  ".join(part.ljust(width) for part, width in zip(cell, widths)) + "  " + cell[3]  # noqa: E731
    lines, section = [], None
    for row_section, cell in cells:
        if row_section != section:
            section = row_section
            lines += [*([""] if lines else []), f"[{section}]", line(header)]
        lines.append(line(cell))
    return "\n".join(lines)
