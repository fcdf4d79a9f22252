"""Byte-level BPE tokenizers (GPT-2 style): every byte string has an encoding that decodes back to it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dsmoe.atomic import atomic_file
from dsmoe.config.data_config import SPECIAL_TOKENS, check_vocab_size


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE with at most `vocab_size` tokens on `texts` (fewer if the texts run out of merges).

    Training is deterministic: the same texts in the same order give the same tokenizer.json.
    """
    check_vocab_size(vocab_size)
    tokenizer = Tokenizer(models.BPE())
    # no prefix space: decode(encode(s)) must give back s exactly, not " " + s
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen in the text or not
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """How many bytes of text each token id stands for (0 for special tokens), indexed by id.

    Exact for byte-level BPE, where each character of a token's string stands for one byte. It gives
    the bytes of any set of predicted targets y: bits-per-byte = sum NLL / ln 2 / lengths[y].sum().
    """
    lengths = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
    for token, token_id in tokenizer.get_vocab().items():
        lengths[token_id] = len(token)
    lengths[list(tokenizer.get_added_tokens_decoder())] = 0
    return lengths


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer.json written by `save_tokenizer` (or any Hugging Face tokenizers file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # the tokenizers library raises a bare Exception for any unreadable file
        raise ValueError(f"tokenizer file {str(path)!r} is not a valid tokenizer.json ({error})") from None


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    """Write `tokenizer` as tokenizer.json, atomically."""
    with atomic_file(path) as temporary:
        tokenizer.save(str(temporary))
