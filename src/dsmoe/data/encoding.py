"""Encoding a long text in chunks, batch by batch, straight into a token file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

# The GPT-2 pre-tokenizer regex (ByteLevel) has no lookbehind and always ends a pre-token before a
# space or lone newline that sits between non-space characters, so cutting there changes no token.
SAFE_CUT = re.compile(r"(?<=\S)(?= \S)|(?<=\S\n)(?=\S)")
CHUNK_CHARS = 1 << 16  # small enough for a smooth progress bar, large enough to amortise the call
CHUNKS_PER_BATCH = 16  # encode_batch spreads a batch over the CPU cores


def safe_chunks(text: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """`text` in consecutive pieces of about `chunk_chars` characters, each cut at a SAFE_CUT."""
    start = 0
    while start < len(text):
        cut = SAFE_CUT.search(text, start + chunk_chars)
        stop = cut.end() if cut else len(text)
        yield text[start:stop]
        start = stop


def encode_to_file(text: str, tokenizer: Tokenizer, path: Path, dtype: np.dtype, progress: tqdm) -> None:
    """Write the token ids of `text` to `path` as raw `dtype` values, advancing `progress` by characters.

    Equal to `tokenizer.encode(text).ids` for byte-level BPE tokenizers (see SAFE_CUT) without ever
    holding the encoding of the whole text in memory.
    """
    pending = safe_chunks(text)
    with open(path, "wb") as token_file:
        while chunks := list(islice(pending, CHUNKS_PER_BATCH)):
            for encoding in tokenizer.encode_batch(chunks, add_special_tokens=False):
                np.asarray(encoding.ids, dtype=dtype).tofile(token_file)
            progress.update(sum(len(chunk) for chunk in chunks))
