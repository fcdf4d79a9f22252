"""Every file of a corpus path, whole, as one token split: the text `dsmoe eval --data` scores.

Unlike a training corpus (dsmoe.data.corpus) nothing is held out or paired: each file is one domain, labelled by its
stem (`notes.txt` -> "notes", `bible.val.txt.xz` -> "bible.val"), and all of its text is tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from dsmoe.data.text_files import corpus_files, file_stem, read_text
from dsmoe.data.tokens import TokenSplit, tokenize_split


@dataclass(frozen=True)
class WholeFiles:
    """The files of a corpus path by label, and their tokens: one domain of `split` per file."""

    files: dict[str, Path]
    split: TokenSplit


def labelled_files(path: str) -> dict[str, Path]:
    """The files of `path` (see DataConfig.path) by label; two files with one label raise naming both."""
    files: dict[str, Path] = {}
    for file in corpus_files(path):
        label = file_stem(file)
        if label in files:
            raise ValueError(f"files {str(files[label])!r} and {str(file)!r} would both be scored as {label!r} "
                             "(a file is labelled by its name without extensions; rename one)")
        files[label] = file
    return files


def tokenize_whole_files(path: str, tokenizer: Tokenizer, cache_dir: str | Path) -> WholeFiles:
    """All the text of every file of `path`, tokenized (or read from the token caches under `cache_dir`)."""
    files = labelled_files(path)
    texts = {label: read_text(file) for label, file in files.items()}
    return WholeFiles(files, tokenize_split("scored", texts, tokenizer, Path(cache_dir).expanduser()))
