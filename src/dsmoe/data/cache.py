"""Content-addressed cache names: a file's name is the hash of everything its content depends on."""

from __future__ import annotations

import hashlib

CACHE_FORMAT = b"dsmoe-cache-v1"  # hashed into every key: change it when a cached file's layout changes


def content_hash(*parts: bytes) -> str:
    """A SHA-256 hex digest of `parts`, length-prefixed so that no two different part lists collide."""
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, *parts):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
