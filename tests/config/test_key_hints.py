"""An unknown config key names what it probably meant: by spelling, or by the name another codebase gives the same
field (SYNONYMS); with neither, where every key is listed."""

import pytest

from dsmoe.config.key_hints import SYNONYMS, keys, unknown_key_message
from dsmoe.runs import RunConfig


@pytest.mark.parametrize("section, key, meant", [
    ("train", "learning_rate", "train.lr"), ("train", "lr_min", "train.min_lr_ratio"),
    ("train", "min_lr", "train.min_lr_ratio"), ("train", "epochs", "train.steps"),
    ("train", "max_steps", "train.steps"),
    ("model", "num_experts", "model.n_routed_experts"), ("model", "n_experts", "model.n_routed_experts"),
    ("model", "top_k", "model.n_activated_experts"), ("model", "num_experts_per_tok", "model.n_activated_experts"),
    ("model", "d_model", "model.hidden_size"), ("model", "n_layer", "model.n_layers"),
    ("model", "num_layers", "model.n_layers"), ("train", "lrr", "train.lr"),
])
def test_a_key_is_suggested_by_meaning_or_spelling(section, key, meant):
    message = unknown_key_message(section, key)
    assert message.startswith(f"unknown key {section}.{key}; did you mean {meant}"), message


def test_a_synonym_in_another_section_names_that_section():
    assert unknown_key_message("model", "learning_rate") == "unknown key model.learning_rate; did you mean train.lr?"


def test_a_key_like_nothing_points_to_dsmoe_config_instead_of_listing_keys():
    assert unknown_key_message("train", "zzz") == "unknown key train.zzz; `dsmoe config` lists every key of [train]"


def test_every_synonym_names_a_real_key_and_is_not_one():
    for alias, target in SYNONYMS.items():
        section, key = target.split(".")
        assert key in keys(section) and alias not in keys(section), alias


@pytest.mark.parametrize("load", [
    lambda tmp_path: RunConfig.load(None, ["train.learning_rate=1e-3"]),
    lambda tmp_path: RunConfig.load(toml(tmp_path, "[train]\nlearning_rate = 1e-3\n")),
])
def test_set_and_a_toml_file_both_suggest(load, tmp_path):
    with pytest.raises(ValueError, match=r"unknown key train.learning_rate; did you mean train.lr\?"):
        load(tmp_path)


def toml(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path
