"""File checksums: what checkpoint manifests and token-cache records store, and verify on load."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of the bytes of `path` (as `sha256sum` prints it)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
