"""Reading the command line: every mistake is one line on stderr and exit 2 (argparse's code), and a misspelled
command or option names the closest one."""

from __future__ import annotations

import argparse
import difflib

from dsmoe.cli.error_line import say_error


class Parser(argparse.ArgumentParser):
    """argparse without the usage block on an error: one line, `dsmoe train: error: ...` (--help shows usage), by
    rank 0 alone under torchrun."""

    def error(self, message: str):
        say_error(self.prog, message)
        self.exit(2)


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' own parsers, by name."""
    [subparsers] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return subparsers.choices


def did_you_mean(word: str, choices: list[str], otherwise: str) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]}?" if close else otherwise


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv` (the arguments after `dsmoe`), naming what was probably meant by an unknown command or option."""
    by_name = commands(parser)
    command = next((word for word in argv if not word.startswith("-")), None)
    if command is not None and command not in by_name:
        otherwise = f"choose one of {', '.join(by_name)}"
        parser.error(f"unknown command {command!r}; {did_you_mean(command, list(by_name), otherwise)}")
    if command is not None:  # before argparse, which would first say that the option meant is missing
        flag = unknown_option(by_name[command], argv[argv.index(command) + 1:])
        if flag is not None:
            by_name[command].error(misspelled(by_name[command], flag))
    args, extras = parser.parse_known_args(argv)
    if extras:
        by_name[args.command].error(unrecognized(argv, extras))
    return args


def unrecognized(argv: list[str], extras: list[str]) -> str:
    """What the first argument the command did not take probably was: a --set value split at its `=`."""
    set_target = split_set(argv, extras[0])
    if set_target is not None:
        return (f"--set needs section.key=value (got {set_target!r} then {extras[0]!r}: write "
                f"--set {set_target}={extras[0]})")
    return f"unrecognized argument {extras[0]!r}"


def long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings if option.startswith("--")]


def unknown_option(parser: argparse.ArgumentParser, words: list[str]) -> str | None:
    """The first `--option` in `words` (before a bare `--`) that names none of the parser's, even abbreviated."""
    options = long_options(parser)
    for word in words[:words.index("--")] if "--" in words else words:
        flag = word.partition("=")[0]
        if flag.startswith("--") and not any(option.startswith(flag) for option in options):
            return flag
    return None


def misspelled(parser: argparse.ArgumentParser, flag: str) -> str:
    return f"unrecognized argument {flag}; " + did_you_mean(flag, long_options(parser),
                                                             f"`{parser.prog} --help` lists its options")


def split_set(argv: list[str], extra: str) -> str | None:
    """The value of a `--set` without `=` that `extra` follows (`--set train.lr 1e-3`), else None."""
    for i, word in enumerate(argv):
        if word == "--set":
            value, following = argv[i + 1:i + 2], argv[i + 2:i + 3]
        elif word.startswith("--set="):
            value, following = [word.removeprefix("--set=")], argv[i + 1:i + 2]
        else:
            continue
        if value and "=" not in value[0] and following == [extra]:
            return value[0]
    return None
