"""Bad run configurations and run directories fail early with an error naming the field or the path."""

import re

import pytest

from dsmoe.run_config import RunConfig
from dsmoe.train import checkpoint as ckpt
from dsmoe.train.loop import train
from train.tiny import one_step_run, run_config


@pytest.mark.parametrize("overrides, message", [
    (["train.lrr=1"], "unknown key train.lrr; did you mean train.lr?"),
    (["model.n_layer=2"], "unknown key model.n_layer; did you mean model.n_layers?"),
    (["optim.lr=1"], "unknown section 'optim'"),
    (["train.lr"], "must look like section.key=value"),
    (["train.schedule='x'"], "train.schedule='x' must be one of cosine, step, constant"),
    (["train.steps=0"], "train.steps=0 must be an integer >= 1"),
    (["train.dtype='fp16'"], "train.dtype='fp16' must be one of float32, bfloat16"),
    (["train.lr=-1"], "train.lr=-1 must be > 0"),
    (["train.beta2=1.0"], "train.beta2=1.0 must be in [0, 1)"),
])
def test_bad_override_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig.load(None, overrides)


def test_unknown_section_in_a_config_file_is_named(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[optimizer]\nlr = 1e-3\n")
    with pytest.raises(ValueError, match=re.escape("unknown section [optimizer]")):
        RunConfig.load(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"config file {str(tmp_path / 'nope.toml')!r} does not exist")):
        RunConfig.load(tmp_path / "nope.toml")


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
    saved = RunConfig.load(ckpt.latest_checkpoint(trained_run) / ckpt.CONFIG)
    changed = RunConfig.from_dict(saved.to_dict(), ["model.hidden_size=96"])
    with pytest.raises(ValueError, match=re.escape("cannot resume: the config differs from the run's in "
                                                   "model.hidden_size: 64 -> 96")):
        train(changed, trained_run, resume=True)


def test_resuming_may_change_the_step_count_but_not_the_batch_size(trained_run):
    saved = RunConfig.load(ckpt.latest_checkpoint(trained_run) / ckpt.CONFIG)
    with pytest.raises(ValueError) as error:
        train(RunConfig.from_dict(saved.to_dict(), ["train.batch_size=8", "train.steps=5"]), trained_run, resume=True)
    assert str(error.value) == "cannot resume: the config differs from the run's in train.batch_size: 4 -> 8"
