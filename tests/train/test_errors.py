"""Training into a run directory it cannot use (resume, overwrite, another config) fails early, naming why."""

import re

import pytest

from dsmoe.runs import RunConfig, RunDir
from dsmoe.train.loop import train
from train.tiny import one_step_run, run_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return one_step_run(tmp_path_factory, "errors")


def test_resuming_a_run_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint to resume from"):
        train(run_config(tmp_path), tmp_path / "empty", resume=True)


def test_a_new_run_into_a_directory_with_checkpoints_is_refused_and_overwrites_nothing(trained_run, tmp_path):
    before = {path: path.read_bytes() for path in trained_run.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match="already has checkpoints; pass --resume"):
        train(run_config(tmp_path, train__steps=1), trained_run)
    assert {path: path.read_bytes() for path in trained_run.rglob("*") if path.is_file()} == before


def test_resuming_with_a_different_model_names_the_differing_field(trained_run):
    saved = RunConfig.load(RunDir(trained_run).latest_checkpoint().config_path)
    changed = RunConfig.from_dict(saved.to_dict(), ["model.hidden_size=96"])
    with pytest.raises(ValueError, match=re.escape("cannot resume: the config differs from the run's in "
                                                   "model.hidden_size: 64 -> 96")):
        train(changed, trained_run, resume=True)


def test_resuming_may_change_the_step_count_but_not_the_batch_size(trained_run):
    saved = RunConfig.load(RunDir(trained_run).latest_checkpoint().config_path)
    with pytest.raises(ValueError) as error:
        train(RunConfig.from_dict(saved.to_dict(), ["train.batch_size=8", "train.steps=5"]), trained_run, resume=True)
    assert str(error.value) == "cannot resume: the config differs from the run's in train.batch_size: 4 -> 8"
