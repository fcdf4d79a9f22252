"""Every shell command the README and docs/ show works as written.

Each ```bash block of a page is marked, on the line before it, `<!-- runnable -->` or `<!-- not run: REASON -->`.
Runnable blocks run command by command in a fresh directory per page (holding `configs/`, a text file `my_text.txt`,
`prompts.txt`, and a short run `runs/mine` for pages that read one without training it), at reduced sizes: the flags
of REDUCTIONS are appended, so training takes a few steps and analysis a few thousand tokens. The commands of blocks
that are not run (multi-node launches, hour-long experiments) are parsed by the `dsmoe` command's own parser, so a
renamed flag or command still fails here.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsmoe.cli.main import build_parser
from dsmoe.cli.parsing import parse

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = "<!-- runnable -->"
NOT_RUN = re.compile(r"<!-- not run: .+ -->")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
BIN = Path(sys.executable).parent  # where the venv's `dsmoe` and `torchrun` are

# flags appended to a command (the last value of a repeated flag wins), by subcommand
REDUCTIONS = {
    "train": ["--steps", "3", "--set", "train.eval_every=0"],
    "train --resume": ["--steps", "5"],
    "demo": ["--minutes", "0.2"],
    "reproduce": ["--seeds", "1", "--steps", "2"],
    "reproduce --budget minutes": ["--seeds", "1", "--minutes", "0.02"],
    "analyze": ["--max-tokens", "1024", "--probe-batches", "1"],
    "generate": ["--max-new-tokens", "8"],
}


def shell_blocks(page: Path) -> list[tuple[int, str, str]]:
    """(line number, marker line, text) of every shell block of `page`."""
    lines = page.read_text().splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines):
        match = FENCE.match(line)
        if match and start is None:
            start = number if match.group(1) in SHELL_LANGUAGES else -1
        elif line.startswith("```") and start is not None:
            if start >= 0:
                marker = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
                blocks.append((start + 1, marker.strip(), "\n".join(lines[start + 1:number])))
            start = None
    return blocks


def commands(text: str) -> list[list[str]]:
    """The commands of a block, each split into words (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def dsmoe_arguments(words: list[str]) -> list[str] | None:
    """The arguments after `dsmoe` (or `-m dsmoe`) in a command, or None for another program."""
    if words[0] == "dsmoe":
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["dsmoe"]:
        return words[words.index("-m") + 2:]
    return None


def reduced(words: list[str]) -> list[str]:
    """`words` with its subcommand's REDUCTIONS appended."""
    arguments = dsmoe_arguments(words)
    if not arguments:
        return words
    command = arguments[0]
    for flag in ("--resume", "--budget minutes"):
        if f"{command} {flag}" in REDUCTIONS and flag in shlex.join(arguments):
            return words + REDUCTIONS[f"{command} {flag}"]
    return words + REDUCTIONS.get(command, [])


def all_blocks() -> list[tuple[Path, int, str, str]]:
    return [(page, line, marker, text) for page in PAGES for line, marker, text in shell_blocks(page)]


def block_id(block) -> str:
    return f"{block[0].name}:{block[1]}"


def test_every_shell_block_is_marked_runnable_or_says_why_not():
    unmarked = [block_id(block) for block in all_blocks()
                if block[2] != RUNNABLE and not NOT_RUN.fullmatch(block[2])]
    assert not unmarked, f"mark these blocks {RUNNABLE} or <!-- not run: REASON -->: {unmarked}"


@pytest.mark.parametrize("block", [block for block in all_blocks() if block[2] != RUNNABLE], ids=block_id)
def test_commands_not_run_parse(block):
    parser = build_parser()
    for words in commands(block[3]):
        arguments = dsmoe_arguments(words)
        if arguments is None or any("$" in word for word in arguments):  # another program, or a shell variable
            continue
        try:
            parse(parser, arguments)
        except SystemExit as error:
            pytest.fail(f"{block_id(block)}: `{shlex.join(words)}` does not parse (exit {error.code})")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A directory with what the pages' commands read: configs/, my_text.txt, prompts.txt, runs/mine."""
    base = tmp_path_factory.mktemp("docs")
    (base / "configs").symlink_to(ROOT / "configs")
    builtin = ROOT / "src" / "dsmoe" / "data" / "builtin"
    (base / "my_text.txt").write_text(lzma.decompress((builtin / "prose_docs.train.txt.xz").read_bytes())
                                      .decode()[:150_000])
    (base / "prompts.txt").write_text("The first\nimport os\n")
    run(base, [["dsmoe", "train", "--config", "configs/tiny.toml", "--data", "my_text.txt", "--out", "runs/mine",
                *REDUCTIONS["train"]]])
    return base


# Runs a page's commands one after the other in one interpreter: `dsmoe ...` through the command's own main(), the
# function its console script calls (one interpreter start instead of one per command), others as processes.
RUNNER = """
import json, shlex, subprocess, sys
from dsmoe.cli.main import main
for words in json.loads(sys.argv[1]):
    print(f"$ {shlex.join(words)}", file=sys.stderr, flush=True)
    try:
        code = main(words[1:]) if words[0] == "dsmoe" else subprocess.run(words).returncode
    except SystemExit as exit:
        code = exit.code
    if code:
        sys.exit(f"`{shlex.join(words)}` exited {code}")
"""


def run(directory: Path, commands_: list[list[str]]) -> None:
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(commands_)], cwd=directory, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("page", [page for page in PAGES if any(m == RUNNABLE for _, m, _ in shell_blocks(page))],
                         ids=lambda page: page.name)
def test_runnable_commands_run(page, workspace, tmp_path):
    shutil.copytree(workspace, tmp_path, symlinks=True, dirs_exist_ok=True)
    text = page.read_text()
    if "--out runs/mine" in text:  # the page trains it itself
        shutil.rmtree(tmp_path / "runs" / "mine")
    run(tmp_path, [reduced(words) for _, marker, block in shell_blocks(page) if marker == RUNNABLE
                   for words in commands(block)])
