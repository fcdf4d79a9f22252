"""A bad RunConfig (override, section, key, file) fails at load with an error naming the field or the path."""

import re

import pytest

from dsmoe.runs import RunConfig


@pytest.mark.parametrize("overrides, message", [
    (["train.lrr=1"], "unknown key train.lrr; did you mean train.lr?"),
    (["model.n_layer=2"], "unknown key model.n_layer; did you mean model.n_layers or model.n_hash_layers?"),
    (["optim.lr=1"], "unknown section 'optim'"),
    (["train.lr"], "must look like section.key=value"),
    (["train.schedule='x'"], "train.schedule='x' must be one of cosine, step, constant"),
    (["train.steps=0"], "train.steps=0 must be an integer >= 1"),
    (["train.dtype='fp16'"], "train.dtype='fp16' must be one of auto, float32, bfloat16"),
    (["train.lr=-1"], "train.lr=-1 must be a number > 0"),
    (["train.beta2=1.0"], "train.beta2=1.0 must be a number in [0, 1)"),
    (["train.compile=False"], "train.compile='False' must be true or false"),
    (["model.norm_topk_prob=no"], "model.norm_topk_prob='no' must be true or false"),
    (["train.steps=true"], "train.steps=True must be an integer >= 1"),
    (["train.eval_batches=0"], "train.eval_batches=0 must be an integer >= 1"),
    (["data.val_fraction=inf"], "data.val_fraction=inf must be a number in (0, 1)"),
    (["train.lr=nan"], "train.lr=nan must be a number > 0"),
    (["model.n_activated_experts=9", "model.n_routed_experts=8"],
     "model.n_activated_experts=9 exceeds n_routed_experts=8 (must be <= it)"),
    (["data.vocab_size=100"], "data.vocab_size=100 is below 257"),
    (["model.preset=nope"], "model.preset='nope' is unknown; choose one of: tiny"),
])
def test_bad_override_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig.load(None, overrides)


def test_a_section_that_is_not_a_table_is_named(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('train = "fast"\n')
    with pytest.raises(ValueError, match=re.escape("[train] must be a table of keys, not 'fast'")):
        RunConfig.load(path)


def test_a_pair_override_keeps_its_value_as_it_is():
    path = "it's \"a\" \\ corpus=1 ü.txt"
    assert RunConfig.load(None, [("data.path", path)]).data.path == path


def test_unknown_section_in_a_config_file_is_named(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[optimizer]\nlr = 1e-3\n")
    with pytest.raises(ValueError, match=re.escape("unknown section [optimizer]")):
        RunConfig.load(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"config file {str(tmp_path / 'nope.toml')!r} does not exist")):
        RunConfig.load(tmp_path / "nope.toml")
