"""Routing traces kept in the run directory (RUN/analysis/traces/NAME/), recorded once per checkpoint and data.

NAME is the checkpoint's directory name and a digest of what the trace depends on: the checkpoint's weights (their
sha256), the routed token ids with their domains, and seq_len. Asking again for the same checkpoint and data
opens the stored trace; different weights or text give another name, so a stored trace is never stale. A trace
is written whole into a temporary directory and renamed (dsmoe.atomic), so a killed recording leaves none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from dsmoe.analysis.chunks import token_chunks
from dsmoe.analysis.trace import META, Trace, record_trace
from dsmoe.atomic import atomic_directory
from dsmoe.runs import CheckpointDir
from dsmoe.runs.checkpoint import weights_sha256

DIGEST_CHARS = 12


def tokens_digest(domain_tokens: dict[str, np.ndarray], seq_len: int) -> str:
    """sha256 of the domains' names and token ids (read in chunks) and seq_len."""
    digest = hashlib.sha256(f"seq_len={seq_len}".encode())
    for domain, tokens in domain_tokens.items():
        digest.update(f"\0{domain}\0{len(tokens)}\0".encode())
        for part in token_chunks(len(tokens)):
            digest.update(np.ascontiguousarray(tokens[part], dtype=np.int64).tobytes())
    return digest.hexdigest()


def trace_path(traces_dir: Path, checkpoint: CheckpointDir, domain_tokens: dict[str, np.ndarray],
               seq_len: int) -> Path:
    digest = hashlib.sha256(f"{weights_sha256(checkpoint)}:{tokens_digest(domain_tokens, seq_len)}".encode())
    return Path(traces_dir) / f"{checkpoint.path.name}-{digest.hexdigest()[:DIGEST_CHARS]}"


def stored_trace(traces_dir: Path, checkpoint: CheckpointDir, domain_tokens: dict[str, np.ndarray], seq_len: int,
                 batch_size: int, load_model: Callable[[], nn.Module]) -> Trace:
    """The trace of the weights of `checkpoint` over `domain_tokens`: opened if stored, else recorded with the
    model load_model() gives (called only then: a stored trace needs no model)."""
    path = trace_path(traces_dir, checkpoint, domain_tokens, seq_len)
    if not (path / META).is_file():
        model = load_model()
        with atomic_directory(path, replace=True) as temporary:
            record_trace(model, domain_tokens, seq_len, temporary, batch_size, checkpoint.path)
    return Trace(path)
