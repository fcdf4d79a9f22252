"""A suite directory (`dsmoe reproduce --out`): what a suite writes there, each name defined here, and the refusal
of one that holds anything else, before any work (a rerun replaces the report and its figures).

    OUT/<variant>/seed<k>/                      one run directory per variant and seed (dsmoe.runs.layout)
    OUT/<variant>/seed<k>.incomplete-<time>/    a run killed before its first checkpoint, moved aside (collect)
    OUT/results.json                            every run's numbers (runner)
    OUT/report.md                               the report (suite_report)
    OUT/report_figures/<figure>.png             its figures, replaced as one directory (suite_figures)

A write of results.json, report.md or report_figures/ killed midway leaves its temporary beside it (dsmoe.atomic),
which is the suite's too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path

from dsmoe.atomic import listed, temporary_pattern

RESULTS, REPORT, FIGURES = "results.json", "report.md", "report_figures"
LOSS_BARS, CURVES, MAX_VIO, PROBE = "loss_bars.png", "curves.png", "max_vio.png", "probe.png"
FIGURE_FILES = (LOSS_BARS, CURVES, MAX_VIO, PROBE)
SEED_PREFIX, INCOMPLETE = "seed", ".incomplete-"
RUN_NAME = re.compile(f"{SEED_PREFIX}[0-9]+({re.escape(INCOMPLETE)}[0-9-]+)?")


def written_by_suite(name: str) -> bool:
    """Whether `name`, directly in a suite directory and not a variant's, is a file the suite writes."""
    return name in (RESULTS, REPORT) or any(fnmatch(name, temporary_pattern(target))
                                            for target in (RESULTS, REPORT, FIGURES))


def foreign_figures(out: Path) -> list[str]:
    """What in OUT/report_figures/ (paths relative to OUT) is not a figure of the report: replacing it would delete
    it."""
    figures = out / FIGURES
    if figures.exists() and not figures.is_dir():
        return [FIGURES]
    entries = sorted(figures.iterdir()) if figures.is_dir() else []
    return [f"{FIGURES}/{entry.name}" for entry in entries if entry.name not in FIGURE_FILES]


def foreign_entries(out: Path, variant_names: Iterable[str]) -> list[str]:
    """What in the suite directory `out` (paths relative to it) the suite with these variants did not write."""
    variant_names, foreign = set(variant_names), foreign_figures(out)
    for entry in sorted(out.iterdir()) if out.is_dir() else ():
        if entry.is_dir() and entry.name in variant_names:
            foreign += [f"{entry.name}/{run.name}" for run in sorted(entry.iterdir())
                        if not RUN_NAME.fullmatch(run.name)]
        elif entry.name != FIGURES and not written_by_suite(entry.name):
            foreign.append(entry.name)
    return sorted(foreign)


def check_suite_dir(out: Path, variant_names: Iterable[str]) -> None:
    """Refuse a --out that is a file, or holds anything this suite did not write, naming it."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a directory")
    foreign = foreign_entries(out, variant_names)
    if foreign:
        raise ValueError(f"--out {str(out)!r} holds {listed(foreign)}, which this suite did not write; a suite goes "
                         "only into a new or empty directory or its own earlier one (whose report it replaces): move "
                         "it, or choose another --out")
