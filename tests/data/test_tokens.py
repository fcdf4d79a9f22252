"""Token splits: dtype choice, exact chunked encoding, cache hits and invalidation, atomic writes, spans."""

from pathlib import Path

import numpy as np
import pytest

from dsmoe.data import Corpus, Document, token_dtype, tokenize_corpus
from dsmoe.data import tokens as tokens_module
from dsmoe.data.encoding import safe_chunks
from dsmoe.data.token_cache import cache_path

from .conftest import SAMPLE_TEXT


def _corpus(**texts):
    """One document per domain: `text` to train on and a fixed val text."""
    return Corpus(tuple(Document(domain, text, f"{domain} held out\n" * 50, Path(f"{domain}.txt"))
                        for domain, text in texts.items()))


@pytest.mark.parametrize(("vocab_size", "dtype"), [(300, np.uint16), (65536, np.uint16), (65537, np.uint32),
                                                  (2**32, np.uint32)])
def test_token_dtype_is_the_smallest_that_holds_every_id(vocab_size, dtype):
    assert token_dtype(vocab_size) == dtype


def test_a_vocab_size_beyond_uint32_raises_naming_it():
    with pytest.raises(ValueError, match=f"vocab_size={2**32 + 1} exceeds the uint32"):
        token_dtype(2**32 + 1)


def test_cutting_at_safe_chunks_leaves_every_token_unchanged(tokenizer):
    chunks = list(safe_chunks(SAMPLE_TEXT, chunk_chars=50))
    assert len(chunks) > 100 and "".join(chunks) == SAMPLE_TEXT
    chunked_ids = [token for chunk in chunks for token in tokenizer.encode(chunk).ids]
    assert chunked_ids == tokenizer.encode(SAMPLE_TEXT).ids


def test_spans_cover_each_domain_and_count_its_utf8_bytes(tokenizer, tmp_path):
    train = tokenize_corpus(_corpus(a=SAMPLE_TEXT, b="ü€ " * 400), tokenizer, tmp_path, seq_len=8).train
    assert tokenizer.decode(train.domain_tokens("b").tolist()) == "ü€ " * 400
    assert train.domains["a"].stop == train.domains["b"].start and train.domains["b"].stop == len(train.tokens)
    assert (train.domains["b"].n_bytes, train.n_bytes) == (6 * 400, len(SAMPLE_TEXT.encode()) + 6 * 400)


def test_a_special_token_string_in_the_text_is_encoded_as_text(tokenizer, tmp_path):
    text = SAMPLE_TEXT + "a document may mention <|endoftext|> literally\n"
    train = tokenize_corpus(_corpus(a=text), tokenizer, tmp_path, seq_len=8).train
    assert tokenizer.token_to_id("<|endoftext|>") not in train.tokens
    assert tokenizer.decode(train.tokens.tolist()) == text


def test_a_second_tokenization_reads_the_cache_without_calling_the_tokenizer(tokenizer, tmp_path, monkeypatch):
    first = tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    monkeypatch.setattr(tokens_module, "encode_to_file", lambda *args: pytest.fail("tokenized again"))
    second = tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    assert np.array_equal(first.train.tokens, second.train.tokens)


def test_changed_text_is_tokenized_again(tokenizer, tmp_path, monkeypatch):
    tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    encoded = []
    real_encode_to_file = tokens_module.encode_to_file
    monkeypatch.setattr(tokens_module, "encode_to_file", lambda text, *rest: encoded.append(text) or
                        real_encode_to_file(text, *rest))
    tokenize_corpus(_corpus(a=SAMPLE_TEXT + "one more line\n"), tokenizer, tmp_path, seq_len=8)
    assert encoded == [SAMPLE_TEXT + "one more line\n"]  # the unchanged val text is still cached


def test_a_crash_while_tokenizing_leaves_no_cache_file(tokenizer, tmp_path, monkeypatch):
    def write_half_then_crash(text, tokenizer, path, dtype, progress):
        path.write_bytes(b"\1\0" * 10)
        raise KeyboardInterrupt
    monkeypatch.setattr(tokens_module, "encode_to_file", write_half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    assert list((tmp_path / "tokens").iterdir()) == []


def test_a_split_shorter_than_one_sequence_raises_with_both_counts(tokenizer, tmp_path):
    splits = tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    n_val = len(splits.val.tokens)
    message = f"the val split has {n_val} tokens, fewer than the seq_len \\+ 1 = {n_val + 1}"
    with pytest.raises(ValueError, match=message):
        tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=n_val)


def test_a_truncated_cache_file_is_detected_named_and_rebuilt(tokenizer, tmp_path, capsys):
    expected = np.array(tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8).train.tokens)
    cached = cache_path(SAMPLE_TEXT, tokenizer.to_str(), tmp_path)
    size = cached.stat().st_size
    cached.write_bytes(cached.read_bytes()[:size // 2])
    again = tokenize_corpus(_corpus(a=SAMPLE_TEXT), tokenizer, tmp_path, seq_len=8)
    err = capsys.readouterr().err
    assert f"token cache {cached} has {size // 2} bytes, {size} expected (truncated?); tokenizing its text again" in err
    assert np.array_equal(again.train.tokens, expected) and cached.stat().st_size == size
