"""prepare_data: from a DataConfig to a saved tokenizer, the train/val token splits and the corpus's identity."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

from dsmoe.atomic import atomic_file
from dsmoe.config.data_config import DataConfig
from dsmoe.data.corpus import Corpus, resolve_corpus
from dsmoe.data.identity import fix_identity
from dsmoe.data.tokenizer import SPECIAL_TOKENS, load_tokenizer, save_tokenizer, train_tokenizer
from dsmoe.data.tokens import TokenSplit, tokenize_corpus
from dsmoe.hashing import cache_key


@dataclass(frozen=True)
class PreparedData:
    """What training needs from the data: the tokenizer (saved at tokenizer_path), both token splits, and the
    config that names this data exactly (path absolute, sha256 recorded: dsmoe.data.identity).

    Bits-per-byte of a split = sum of NLL in nats / ln 2 / split.n_bytes.
    """

    tokenizer: Tokenizer
    tokenizer_path: Path
    train: TokenSplit
    val: TokenSplit
    config: DataConfig

    @property
    def domains(self) -> list[str]:
        return list(self.train.domains)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def prepare_data(config: DataConfig, tokenizer_path: str | Path, model_vocab_size: int | None = None,
                 reuse_tokenizer: bool = False) -> PreparedData:
    """Read the corpus (refused if config.sha256 is set and differs), train or reuse the tokenizer (saved at
    `tokenizer_path` once both splits are tokenized), tokenize both splits.

    A run saves it at RunDir.tokenizer_path; the path is given rather than derived so the data pipeline stays
    below dsmoe.runs and knows nothing of run directories. `reuse_tokenizer`: the tokenizer already at
    `tokenizer_path` is the one (a resumed or evaluated run's, whose token ids its checkpoints hold); it is read,
    never written, and config.tokenizer is ignored.

    `model_vocab_size` is the model's vocab_size: used when config.vocab_size is None, and a bound
    on the tokenizer's size either way. Caches under config.cache_dir (tokenizers/, tokens/) make a
    re-run skip training the tokenizer and tokenizing.
    """
    corpus = resolve_corpus(config.path, config.val_fraction)
    fixed = fix_identity(config, corpus)
    vocab_size = _vocab_size(config, model_vocab_size)
    cache_dir = Path(config.cache_dir).expanduser()
    tokenizer_path = Path(tokenizer_path)
    source = tokenizer_path if reuse_tokenizer else _given_tokenizer(config)
    if source is None:
        tokenizer = _trained_tokenizer(corpus, vocab_size, cache_dir)
    else:
        tokenizer = _checked_tokenizer(source, vocab_size)
    splits = tokenize_corpus(corpus, tokenizer, cache_dir, config.seq_len)
    if source is None:
        save_tokenizer(tokenizer, tokenizer_path)
    elif not (tokenizer_path.exists() and tokenizer_path.samefile(source)):
        with atomic_file(tokenizer_path) as temporary:
            shutil.copyfile(source, temporary)
    return PreparedData(tokenizer, tokenizer_path, splits.train, splits.val, fixed)


def _given_tokenizer(config: DataConfig) -> Path | None:
    """The tokenizer file config.tokenizer names, or None: train one."""
    return None if config.tokenizer is None else Path(config.tokenizer).expanduser()


def _vocab_size(config: DataConfig, model_vocab_size: int | None) -> int | None:
    if config.vocab_size is not None and model_vocab_size is not None and config.vocab_size > model_vocab_size:
        raise ValueError(
            f"vocab_size={config.vocab_size} exceeds the model's vocab_size={model_vocab_size} "
            "(token ids must fit its embedding)"
        )
    if config.vocab_size is None and model_vocab_size is None and config.tokenizer is None:
        raise ValueError("vocab_size=None means the model's, but prepare_data got no model_vocab_size to train with")
    return config.vocab_size if config.vocab_size is not None else model_vocab_size


def _trained_tokenizer(corpus: Corpus, vocab_size: int, cache_dir: Path) -> Tokenizer:
    """Train on the train text, or load what an earlier run trained on it (training is deterministic)."""
    # only train text: a tokenizer fit to the val text would leak it into the val loss
    texts = [document.train_text for document in corpus.documents]
    settings = f"{vocab_size} {SPECIAL_TOKENS} tokenizers=={tokenizers.__version__}".encode()
    cached = cache_dir / "tokenizers" / f"{cache_key(settings, *(text.encode() for text in texts))}.json"
    if cached.exists():
        return load_tokenizer(cached)
    tokenizer = train_tokenizer(texts, vocab_size)
    save_tokenizer(tokenizer, cached)
    return tokenizer


def _checked_tokenizer(source: Path, vocab_size: int | None) -> Tokenizer:
    tokenizer = load_tokenizer(source)
    if vocab_size is not None and tokenizer.get_vocab_size() > vocab_size:
        raise ValueError(
            f"tokenizer={str(source)!r} has {tokenizer.get_vocab_size()} tokens, more than vocab_size={vocab_size}"
        )
    return tokenizer
