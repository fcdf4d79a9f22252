"""A misspelled command or option is one line naming the closest one (exit 2, argparse's code, with no usage
block); a --set written with a space instead of `=` says how to write it."""

import pytest

from dsmoe.cli.main import main


def argparse_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("argv, message", [
    (["train", "--ouut", "x"], "dsmoe train: error: unrecognized argument --ouut; did you mean --out?"),
    (["train", "--ouut=x"], "dsmoe train: error: unrecognized argument --ouut; did you mean --out?"),
    (["train", "--stpes", "3"], "dsmoe train: error: unrecognized argument --stpes; did you mean --steps?"),
    (["eval", "--rn", "r"], "dsmoe eval: error: unrecognized argument --rn; did you mean --run?"),
    (["train", "--zzzzzzzz"], "dsmoe train: error: unrecognized argument --zzzzzzzz; `dsmoe train --help` lists its "
                              "options"),
])
def test_a_misspelled_option_names_the_commands_closest(argv, message, capsys):
    assert argparse_error(argv, capsys) == message


def test_an_option_of_another_command_is_not_suggested(capsys):
    assert "--prompt" not in argparse_error(["train", "--promt", "x"], capsys)


def test_a_misspelled_command_names_the_closest(capsys):
    assert argparse_error(["trian", "--out", "x"], capsys) == (
        "dsmoe: error: unknown command 'trian'; did you mean train?")
    assert argparse_error(["zzz"], capsys).startswith("dsmoe: error: unknown command 'zzz'; choose one of demo, train")


@pytest.mark.parametrize("argv", [["train", "--set", "train.lr", "1e-3"], ["train", "--set=train.lr", "1e-3"]])
def test_a_set_split_at_its_equals_sign_says_how_to_write_it(argv, capsys):
    assert argparse_error(argv, capsys) == ("dsmoe train: error: --set needs section.key=value (got 'train.lr' then "
                                            "'1e-3': write --set train.lr=1e-3)")


def test_a_bad_option_value_is_one_line(capsys):
    assert argparse_error(["train", "--steps", "many"], capsys) == (
        "dsmoe train: error: argument --steps: invalid int value: 'many'")
