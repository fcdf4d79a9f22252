"""DataConfig: defaults are valid, every bad field raises a message naming the field, value and rule."""

import pytest

from dsmoe.data import DataConfig


def test_defaults_are_valid():
    config = DataConfig()
    assert (config.path, config.tokenizer, config.vocab_size, config.seq_len) == ("shakespeare", None, None, 256)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("val_fraction", 1.5, "val_fraction=1.5 must be a number in (0, 1)"),
    ("val_fraction", 0.0, "val_fraction=0.0 must be a number in (0, 1)"),
    ("seq_len", 0, "seq_len=0 must be an integer >= 1"),
    ("seq_len", "256", "seq_len='256' must be an integer >= 1"),
    ("vocab_size", -3, "vocab_size=-3 must be an integer >= 1"),
    ("vocab_size", 100, "vocab_size=100 is below 257"),
    ("path", "", "path='' must be a non-empty string"),
    ("cache_dir", None, "cache_dir=None must be a non-empty string"),
    ("tokenizer", "", "tokenizer='' must be a non-empty string"),
])
def test_a_bad_field_raises_naming_field_value_and_rule(field, value, message):
    with pytest.raises(ValueError) as error:
        DataConfig(**{field: value})
    assert message in str(error.value)


def test_a_small_vocab_size_is_allowed_when_reusing_a_tokenizer():
    assert DataConfig(tokenizer="tokenizer.json", vocab_size=100).vocab_size == 100
