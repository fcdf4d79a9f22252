"""Token splits: every document's text tokenized once into a cached, memory-mapped token file (data.token_cache).

Documents are concatenated without separator tokens, so a split's tokens decode to exactly its text
and bits-per-byte divides by exactly the bytes the tokens cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from dsmoe.atomic import atomic_file
from dsmoe.data.batches import count_windows
from dsmoe.data.corpus import Corpus
from dsmoe.data.encoding import encode_to_file
from dsmoe.data.token_cache import cache_path, is_cached, record_checksum

PROGRESS_MIN_CHARS = 1_000_000  # below this, tokenizing takes about a second and a bar is noise


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id below `vocab_size`."""
    for dtype in (np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size={vocab_size} exceeds the uint32 token file capacity of {2**32} ids")


@dataclass(frozen=True)
class DomainSpan:
    """Where one domain's tokens lie in a split ([start, stop)) and how many UTF-8 bytes they encode."""

    start: int
    stop: int
    n_bytes: int


@dataclass(frozen=True)
class TokenSplit:
    """The tokens of one split ("train" or "val"), all domains concatenated in corpus order."""

    name: str
    tokens: np.ndarray
    domains: dict[str, DomainSpan]

    @property
    def n_bytes(self) -> int:
        """UTF-8 bytes of the split's text: bits-per-byte = sum of NLL in nats / ln 2 / n_bytes."""
        return sum(span.n_bytes for span in self.domains.values())

    def domain_tokens(self, domain: str) -> np.ndarray:
        if domain not in self.domains:
            raise KeyError(f"domain {domain!r} is not in the {self.name} split (domains: {list(self.domains)})")
        span = self.domains[domain]
        return self.tokens[span.start:span.stop]


@dataclass(frozen=True)
class TokenSplits:
    train: TokenSplit
    val: TokenSplit


def tokenize_corpus(corpus: Corpus, tokenizer: Tokenizer, cache_dir: Path, seq_len: int) -> TokenSplits:
    """Tokenize (or load from `cache_dir`) both splits; each must hold at least one sequence of `seq_len`."""
    train_texts = {document.domain: document.train_text for document in corpus.documents}
    val_texts = {document.domain: document.val_text for document in corpus.documents}
    splits = TokenSplits(
        train=tokenize_split("train", train_texts, tokenizer, cache_dir),
        val=tokenize_split("val", val_texts, tokenizer, cache_dir),
    )
    for split in (splits.train, splits.val):
        count_windows(len(split.tokens), seq_len, f"the {split.name} split")
    return splits


def tokenize_split(name: str, texts: dict[str, str], tokenizer: Tokenizer, cache_dir: Path) -> TokenSplit:
    """The tokens of every domain's text in `texts`, tokenizing only those not cached yet (or cached damaged)."""
    dtype = token_dtype(tokenizer.get_vocab_size())
    tokenizer_json = tokenizer.to_str()
    text_tokenizer = Tokenizer.from_str(tokenizer_json)
    text_tokenizer.encode_special_tokens = True  # a literal "<|endoftext|>" in the text is text, not a special id
    paths = {domain: cache_path(text, tokenizer_json, cache_dir) for domain, text in texts.items()}
    missing = [domain for domain, path in paths.items() if not is_cached(path)]
    total_chars = sum(len(texts[domain]) for domain in missing)
    with tqdm(total=total_chars, unit="char", unit_scale=True, desc=f"tokenizing {name}",
              disable=total_chars < PROGRESS_MIN_CHARS) as progress:
        for domain in missing:
            with atomic_file(paths[domain]) as temporary:
                encode_to_file(texts[domain], text_tokenizer, temporary, dtype, progress)
            record_checksum(paths[domain])
    arrays = [np.memmap(path, dtype=dtype, mode="r") for path in paths.values()]
    stops = np.cumsum([len(array) for array in arrays]).tolist()
    starts = [0] + stops[:-1]
    domains = {domain: DomainSpan(start, stop, len(texts[domain].encode()))
               for domain, start, stop in zip(texts, starts, stops)}
    tokens = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)  # one file: stay memory-mapped
    return TokenSplit(name, tokens, domains)
