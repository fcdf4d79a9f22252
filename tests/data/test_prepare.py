"""prepare_data: tokenizer trained or reused, saved at the given path, caches skip work, vocab bounds."""

import pytest

from dsmoe.data import DataConfig, load_tokenizer, prepare_data, save_tokenizer
from dsmoe.data import prepare as prepare_module
from dsmoe.data import tokens as tokens_module

from .conftest import SAMPLE_TEXT


@pytest.fixture
def config(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "prose.txt").write_text(SAMPLE_TEXT)
    (tmp_path / "corpus" / "poems.txt").write_text(SAMPLE_TEXT.upper())
    return DataConfig(path=str(tmp_path / "corpus"), seq_len=16, cache_dir=str(tmp_path / "cache"))


def test_a_trained_tokenizer_is_saved_at_the_given_path_and_sized_by_the_model(config, tmp_path):
    data = prepare_data(config, tmp_path / "run" / "tokenizer.json", model_vocab_size=300)
    assert data.tokenizer_path == tmp_path / "run" / "tokenizer.json"
    assert load_tokenizer(data.tokenizer_path).to_str() == data.tokenizer.to_str() and data.vocab_size == 300
    assert data.domains == ["poems", "prose"] and data.val.n_bytes < data.train.n_bytes


def test_a_second_prepare_neither_trains_nor_tokenizes(config, tmp_path, monkeypatch):
    first = prepare_data(config, tmp_path / "first.json", model_vocab_size=300)
    monkeypatch.setattr(prepare_module, "train_tokenizer", lambda *args: pytest.fail("trained again"))
    monkeypatch.setattr(tokens_module, "encode_to_file", lambda *args: pytest.fail("tokenized again"))
    second = prepare_data(config, tmp_path / "second.json", model_vocab_size=300)
    assert second.tokenizer.to_str() == first.tokenizer.to_str()
    assert second.train.tokens.tolist() == first.train.tokens.tolist()


def test_a_reused_tokenizer_is_copied_to_the_given_path(config, tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "given.json")
    reuse = DataConfig(path=config.path, tokenizer=str(tmp_path / "given.json"), seq_len=16, cache_dir=config.cache_dir)
    data = prepare_data(reuse, tmp_path / "run" / "tokenizer.json", model_vocab_size=4096)
    assert data.tokenizer_path.read_bytes() == (tmp_path / "given.json").read_bytes()


def test_a_reused_tokenizer_larger_than_vocab_size_raises_naming_both(config, tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "given.json")
    reuse = DataConfig(path=config.path, tokenizer=str(tmp_path / "given.json"), vocab_size=300)
    with pytest.raises(ValueError, match=r"tokenizer='.*given.json' has 400 tokens, more than vocab_size=300"):
        prepare_data(reuse, tmp_path / "tokenizer.json")


@pytest.mark.parametrize(("vocab_size", "model_vocab_size", "message"), [
    (None, None, "vocab_size=None means the model's, but prepare_data got no model_vocab_size"),
    (600, 512, "vocab_size=600 exceeds the model's vocab_size=512"),
])
def test_an_unusable_vocab_size_raises_naming_it(config, tmp_path, vocab_size, model_vocab_size, message):
    config.vocab_size = vocab_size
    with pytest.raises(ValueError, match=message):
        prepare_data(config, tmp_path / "tokenizer.json", model_vocab_size=model_vocab_size)
