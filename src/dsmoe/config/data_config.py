"""DataConfig: where the text comes from, how it is tokenized, and how it is cut into sequences."""

from __future__ import annotations

from dataclasses import dataclass

from dsmoe.field_rules import FLAG, POSITIVE_INT, TEXT, FieldError, Rule, check_fields, optional

END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT,)
BYTE_ALPHABET_SIZE = 256  # the ByteLevel alphabet maps each of the 256 byte values to one symbol
MIN_VOCAB_SIZE = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)


def check_vocab_size(vocab_size: int) -> None:
    """Raise unless a byte-level BPE can have `vocab_size` tokens (all bytes plus the special tokens)."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise FieldError(
            "vocab_size", vocab_size, f"is below {MIN_VOCAB_SIZE}, the smallest byte-level BPE vocabulary "
            f"({BYTE_ALPHABET_SIZE} byte tokens + {len(SPECIAL_TOKENS)} special token(s) {list(SPECIAL_TOKENS)})"
        )


FIELD_RULES = dict(path=TEXT, tokenizer=optional(TEXT), vocab_size=optional(POSITIVE_INT), seq_len=POSITIVE_INT,
                   shift_windows=FLAG, val_fraction=Rule("number", "(0, 1)"), cache_dir=TEXT, sha256=optional(TEXT))


@dataclass
class DataConfig:
    """Configuration of the data pipeline.

    path: the corpus: a text file, a directory (every non-hidden file inside, recursively, sorted),
        a glob, or a built-in corpus name, "shakespeare" or "domains". Files may be .xz or .gz
        compressed; a file's stem names its domain, and `<stem>.train.txt` / `<stem>.val.txt`
        pairs give explicit splits. A built-in name wins over a same-named path ("./shakespeare"
        names the directory). Default "shakespeare".
    tokenizer: path to an existing tokenizer.json to reuse; None trains a new byte-level BPE on
        the training text. Default None.
    vocab_size: vocabulary size of the tokenizer to train (and the most token ids a reused one
        may have); None takes the model's vocab_size. Default None.
    seq_len: tokens per training sequence (the model sees seq_len inputs and predicts seq_len
        targets). Default 256.
    shift_windows: cut the training text into sequences at another offset in [0, seq_len) in every epoch after
        the first (drawn from the seed and the epoch), so a corpus trained on for several epochs is not seen as
        the same sequences each time: less memorised, better validation loss (docs/BENCHMARKS.md). Default False
        (the fixed grid, as runs before it trained).
    val_fraction: share of each file's text held out for validation, cut at a line boundary;
        used only for files without an explicit val file. Default 0.05.
    cache_dir: directory of the token caches ("~" is expanded). Default "~/.cache/dsmoe".
    sha256: the hash of the corpus text (dsmoe.hashing.corpus_sha256). A run records it at its start,
        with `path` made absolute, and resumes or is evaluated only on text with this hash; set in a new
        run's config it pins the corpus. Default None (not recorded yet).
    """

    path: str = "shakespeare"
    tokenizer: str | None = None
    vocab_size: int | None = None
    seq_len: int = 256
    shift_windows: bool = False
    val_fraction: float = 0.05
    cache_dir: str = "~/.cache/dsmoe"
    sha256: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, FIELD_RULES)
        if self.vocab_size is not None and self.tokenizer is None:
            check_vocab_size(self.vocab_size)
