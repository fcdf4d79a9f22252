"""A bad RunConfig (override, section, key, file) fails at load with an error naming the field or the path."""

import re

import pytest

from dsmoe.runs import RunConfig


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
