"""Content hashing, in one place: the checksum of a file (what checkpoint manifests, token-cache records and trace
records store and verify), the hash of a list of byte strings, the cache key of a file made from some inputs, and a
corpus's identity (the hash a run records of the text it trains on)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ground floor imports nothing above it
    from dsmoe.data.corpus import Corpus

CACHE_FORMAT = b"dsmoe-cache-v1"  # hashed into every cache key: change it when a cached file's layout changes


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of the bytes of `path` (as `sha256sum` prints it)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def parts_sha256(parts: Iterable[bytes]) -> str:
    """A SHA-256 hex digest of `parts` (read one at a time), length-prefixed so that no two different part lists
    collide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def cache_key(*parts: bytes) -> str:
    """The name of a cache file made from `parts`: the hash of everything its content depends on."""
    return parts_sha256((CACHE_FORMAT, *parts))


def corpus_sha256(corpus: "Corpus") -> str:
    """SHA-256 over the documents in order: each one's domain, train text and val text (UTF-8, length-prefixed),
    so editing, renaming, adding or re-splitting a file changes it."""
    return parts_sha256(part.encode() for document in corpus.documents
                        for part in (document.domain, document.train_text, document.val_text))
