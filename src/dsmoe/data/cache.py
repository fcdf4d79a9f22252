"""Content hashes: the names of cache files (the hash of everything their content depends on) and a corpus's
identity (the checksum that vouches for a cached file is dsmoe.checksums')."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

CACHE_FORMAT = b"dsmoe-cache-v1"  # hashed into every cache key: change it when a cached file's layout changes


def parts_sha256(parts: Iterable[bytes]) -> str:
    """A SHA-256 hex digest of `parts` (read one at a time), length-prefixed so that no two different part lists
    collide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def content_hash(*parts: bytes) -> str:
    """The cache key of a file made from `parts`."""
    return parts_sha256((CACHE_FORMAT, *parts))


