"""--steps, --minutes and --seed of `dsmoe train` (and --seed of `dsmoe demo`) are --set of one train field each; a
shortcut and a --set of the same field that differ are one line naming both, exit 2, before anything trains."""

from types import SimpleNamespace

import pytest

from dsmoe.cli import demo_cmd, train_cmd
from dsmoe.cli.main import main


@pytest.fixture
def trained_configs(monkeypatch):
    """The configs `dsmoe train` would train, without training."""
    configs = []
    monkeypatch.setattr(train_cmd, "train", lambda config, out, resume: configs.append(config) or SimpleNamespace(
        writer=False, stopped_early=None))
    return configs


def test_shortcuts_set_their_train_fields(trained_configs, tmp_path):
    assert main(["train", "--out", str(tmp_path), "--steps", "7", "--minutes", "2.5", "--seed", "3"]) == 0
    [config] = trained_configs
    assert (config.train.steps, config.train.time_budget_min, config.train.seed) == (7, 2.5, 3)


def test_a_shortcut_agreeing_with_set_is_accepted(trained_configs, tmp_path):
    assert main(["train", "--out", str(tmp_path), "--steps", "7", "--set", "train.steps=7"]) == 0
    assert trained_configs[0].train.steps == 7


@pytest.mark.parametrize("flag, value, assignment, message", [
    ("--steps", "7", "train.steps=8", "--steps=7 and --set train.steps=8 differ: give one of them"),
    ("--minutes", "2", "train.time_budget_min=3", "--minutes=2.0 and --set train.time_budget_min=3 differ"),
    ("--seed", "1", "train.seed=2", "--seed=1 and --set train.seed=2 differ"),
    ("--device", "cpu", "train.device='auto'", "--device='cpu' and --set train.device='auto' differ"),
])
def test_a_shortcut_and_a_differing_set_are_refused_naming_both(flag, value, assignment, message, trained_configs,
                                                                tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), flag, value, "--set", assignment]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dsmoe train: error: ") and message in err and len(err.splitlines()) == 1, err
    assert not trained_configs


@pytest.mark.parametrize("flag, value, message", [
    ("--steps", "0", "--steps=0 must be an integer >= 1"),
    ("--minutes", "-1", "--minutes=-1.0 must be a number > 0"),
    ("--seed", "-2", "--seed=-2 must be an integer >= 0"),
])
def test_a_bad_shortcut_value_is_named_by_its_flag(flag, value, message, trained_configs, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), flag, value]) == 2
    assert capsys.readouterr().err.strip() == f"dsmoe train: error: {message}"


def test_demo_seed_and_its_minutes_against_set(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(demo_cmd, "run_demo", lambda *args: calls.append(args) or SimpleNamespace(stopped_early=None))
    assert main(["demo", "--out", str(tmp_path), "--seed", "4"]) == 0
    assert ("train.seed", 4) in calls[0][2]
    assert main(["demo", "--out", str(tmp_path), "--minutes", "1", "--set", "train.time_budget_min=3"]) == 2
    assert "--minutes=1.0 and --set train.time_budget_min=3 differ" in capsys.readouterr().err
