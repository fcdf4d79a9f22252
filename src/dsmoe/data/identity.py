"""A corpus's identity, fixed when a run starts and recorded in its [data] section: `path` made absolute (a built-in
corpus name stays a name) and `sha256`, the hash of the text the run reads.

    [data]
    path = "/home/me/corpus.txt"
    sha256 = "3f1c..."   # dsmoe.hashing.corpus_sha256: every document's domain, train text and val text, in order

Resuming or evaluating the run reads that path again and refuses text whose hash differs, so its checkpoints and
its tokenizer always meet the text they were made from.
"""

from __future__ import annotations

import dataclasses
import os

from dsmoe.config.data_config import DataConfig
from dsmoe.data.builtin import BUILTIN_CORPORA
from dsmoe.data.corpus import Corpus
from dsmoe.hashing import corpus_sha256


def absolute_path(path: str) -> str:
    """The corpus path `path` resolved against the current directory ("~" expanded); a built-in name as it is."""
    return path if path in BUILTIN_CORPORA else os.path.abspath(os.path.expanduser(path))


def fix_identity(config: DataConfig, corpus: Corpus) -> DataConfig:
    """`config` with its identity recorded; raises when `corpus` is not the text its sha256 recorded."""
    path, sha256 = absolute_path(config.path), corpus_sha256(corpus)
    if config.sha256 is not None and config.sha256 != sha256:
        raise ValueError(f"the corpus {path!r} changed since the run started (sha256 {config.sha256} -> {sha256}); "
                         "a run resumes and evaluates only on the text it started with: restore that text, or "
                         "start a new run (another --out) on this one")
    return dataclasses.replace(config, path=path, sha256=sha256)
