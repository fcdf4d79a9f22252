"""Under torchrun an error every rank meets is said once, by rank 0: another rank waits for rank 0 to end the job,
and says it only if the wait runs out (then it was its own); an error a rank meets alone it says at once."""

import pytest

from dsmoe.cli import error_line
from dsmoe.cli.error_line import say_error
from dsmoe.cli.main import main

PREFIX, MESSAGE = "dsmoe train", "train.lr=-1 must be > 0"


@pytest.fixture
def waits(monkeypatch):
    """The seconds each wait for rank 0 would have lasted (none is slept)."""
    waited = []
    monkeypatch.setattr(error_line.time, "sleep", waited.append)
    return waited


def as_rank(monkeypatch, rank: int, world_size: int = 2) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))


def test_alone_or_as_rank_0_the_error_is_said_at_once(monkeypatch, capsys, waits):
    say_error(PREFIX, MESSAGE)
    as_rank(monkeypatch, 0)
    say_error(PREFIX, MESSAGE)
    assert capsys.readouterr().err == f"{PREFIX}: error: {MESSAGE}\n" * 2 and waits == []


def test_another_rank_waits_for_rank_0_and_says_a_shared_error_only_after(monkeypatch, capsys, waits):
    as_rank(monkeypatch, 1)
    say_error(PREFIX, MESSAGE)
    assert waits == [error_line.RANK_ZERO_GRACE_S]  # rank 0 ends the job meanwhile: torchrun stops this rank
    assert capsys.readouterr().err == f"{PREFIX}: error: rank 1: {MESSAGE}\n"


def test_another_rank_says_its_own_error_at_once_naming_itself(monkeypatch, capsys, waits):
    as_rank(monkeypatch, 3, world_size=4)
    say_error(PREFIX, MESSAGE, shared=False)
    assert capsys.readouterr().err == f"{PREFIX}: error: rank 3: {MESSAGE}\n" and waits == []


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # a command line error: argparse exits
        return stop.code


@pytest.mark.parametrize("argv", [["train", "--set", "train.lr=-1"], ["train", "--stepz", "2"]],
                         ids=["config", "command line"])
def test_a_config_or_command_line_error_is_one_every_rank_meets(monkeypatch, capsys, waits, argv):
    as_rank(monkeypatch, 1)
    assert exit_code(argv) == 2 and waits == [error_line.RANK_ZERO_GRACE_S]
