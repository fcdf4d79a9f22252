"""Byte-level BPE: exact round trips on any text, deterministic training, vocab_size bounds, save/load."""

import random

import pytest

from dsmoe.data import load_tokenizer, save_tokenizer, token_byte_lengths, train_tokenizer

from .conftest import SAMPLE_TEXT


def _random_unicode(seed: int, length: int = 300) -> str:
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x24F), (0x370, 0x3FF), (0x4E00, 0x4FFF), (0x1F300, 0x1F64F),
              (0x300, 0x36F), (0x2000, 0x206F), (0xE000, 0xE0FF)]  # ASCII, controls, Latin, Greek, CJK, emoji,
    # combining marks, Unicode spaces and punctuation, private use
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(length))


@pytest.mark.parametrize("seed", range(5))
def test_decode_of_encode_gives_back_arbitrary_unicode_text(tokenizer, seed):
    text = _random_unicode(seed) + "  \n\n\t x  y\r\n"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_decode_of_encode_gives_back_every_byte_value_unseen_in_training(tokenizer):
    text = "".join(map(chr, range(256))) * 2
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_token_byte_lengths_sum_to_the_utf8_bytes_of_the_text(tokenizer):
    text = _random_unicode(seed=9) + SAMPLE_TEXT[:500]
    assert token_byte_lengths(tokenizer)[tokenizer.encode(text).ids].sum() == len(text.encode())


def test_special_tokens_stand_for_no_bytes(tokenizer):
    assert token_byte_lengths(tokenizer)[tokenizer.token_to_id("<|endoftext|>")] == 0


def test_training_is_deterministic():
    assert train_tokenizer([SAMPLE_TEXT], 350).to_str() == train_tokenizer([SAMPLE_TEXT], 350).to_str()


def test_training_reaches_the_requested_vocab_size(tokenizer):
    assert tokenizer.get_vocab_size() == 400


def test_a_vocab_size_below_bytes_plus_special_tokens_raises_naming_it():
    with pytest.raises(ValueError, match=r"vocab_size=256 is below 257"):
        train_tokenizer([SAMPLE_TEXT], 256)


def test_save_then_load_gives_the_same_tokenizer(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "run" / "tokenizer.json")
    assert load_tokenizer(tmp_path / "run" / "tokenizer.json").to_str() == tokenizer.to_str()


def test_loading_a_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_tokenizer(tmp_path / "nope.json")
