"""Token cache files: `tokens/<key>.tokens` (raw token ids) beside `tokens/<key>.tokens.json`, its size and SHA-256.

The key is a hash of the text and the tokenizer, so a cache file is found again by whoever tokenizes the same text;
its checksum is checked on every load, so a truncated or damaged file is tokenized again (said on stderr) instead of
silently giving a shorter or different split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dsmoe.atomic import atomic_file
from dsmoe.hashing import cache_key, file_sha256


def cache_path(text: str, tokenizer_json: str, cache_dir: Path) -> Path:
    """Where the tokens of `text` under this tokenizer are cached: named by a hash of both."""
    return cache_dir / "tokens" / f"{cache_key(tokenizer_json.encode(), text.encode())}.tokens"


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def record_checksum(path: Path) -> None:
    """Write the size and SHA-256 of the cache file `path` beside it (once the file is complete)."""
    with atomic_file(checksum_path(path)) as temporary:
        temporary.write_text(json.dumps({"bytes": path.stat().st_size, "sha256": file_sha256(path)}))


def damage(path: Path) -> str | None:
    """What is wrong with the existing cache file `path` (None: it is what its checksum recorded)."""
    try:
        recorded = json.loads(checksum_path(path).read_text())
        expected_bytes, expected_sha256 = int(recorded["bytes"]), str(recorded["sha256"])
    except FileNotFoundError:
        return f"has no checksum file {checksum_path(path).name}"
    except (ValueError, TypeError, KeyError) as error:
        return f"has an unreadable checksum file {checksum_path(path).name} ({type(error).__name__}: {error})"
    size = path.stat().st_size
    if size != expected_bytes:
        return f"has {size} bytes, {expected_bytes} expected (truncated?)"
    found = file_sha256(path)
    if found != expected_sha256:
        return f"has sha256 {found}, {expected_sha256} expected"
    return None


def is_cached(path: Path) -> bool:
    """Whether `path` holds an intact cache file; a damaged one is named on stderr, to be tokenized again."""
    if not path.exists():
        return False
    problem = damage(path)
    if problem is not None:
        print(f"token cache {path} {problem}; tokenizing its text again", file=sys.stderr)
    return problem is None
