"""prepare_data: tokenizer trained or reused, saved at the given path, caches skip work, vocab bounds, the data's
identity (absolute path and text hash)."""

import pytest

from dsmoe.data import DataConfig, load_tokenizer, prepare_data, resolve_corpus, save_tokenizer
from dsmoe.data.identity import absolute_path
from dsmoe.hashing import corpus_sha256
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


def test_the_data_is_named_by_an_absolute_path_and_the_hash_of_its_text(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config.path = "corpus"
    fixed = prepare_data(config, tmp_path / "tokenizer.json", model_vocab_size=300).config
    assert fixed.path == str(tmp_path / "corpus") and fixed.sha256 == corpus_sha256(resolve_corpus("corpus"))
    assert absolute_path("shakespeare") == "shakespeare"  # a built-in corpus stays a name
    (tmp_path / "corpus" / "poems.txt").write_text(SAMPLE_TEXT)
    with pytest.raises(ValueError, match=f"the corpus '{tmp_path / 'corpus'}' changed since the run started "
                                         f"\\(sha256 {fixed.sha256} -> "):
        prepare_data(fixed, tmp_path / "tokenizer.json", model_vocab_size=300)


def test_a_reused_run_tokenizer_is_read_and_never_written(config, tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
    before = (tmp_path / "tokenizer.json").stat()
    data = prepare_data(config, tmp_path / "tokenizer.json", model_vocab_size=4096, reuse_tokenizer=True)
    assert data.tokenizer.to_str() == tokenizer.to_str()
    assert (tmp_path / "tokenizer.json").stat().st_mtime_ns == before.st_mtime_ns


def test_no_tokenizer_is_saved_when_the_data_cannot_be_used(config, tmp_path):
    config.seq_len = 100_000
    with pytest.raises(ValueError, match="needed for one sequence"):
        prepare_data(config, tmp_path / "tokenizer.json", model_vocab_size=300)
    assert not (tmp_path / "tokenizer.json").exists()
