"""The statistics of a routing trace read it in chunks: three times the tokens take no more memory."""

import json
import tracemalloc

import numpy as np

from dsmoe.analysis.load_balance import batch_max_vio
from dsmoe.analysis.trace import META, Trace, entropy_name, experts_name, weights_name
from dsmoe.analysis.trace_numbers import trace_numbers

N_EXPERTS, TOP_K, VOCAB, SEQ_LEN = 8, 2, 1000, 64


def synthetic_trace(path, n_tokens: int) -> Trace:
    """A trace of n_tokens random choices, written block by block straight into its memory-mapped files."""
    path.mkdir()
    shapes = {"token_ids.npy": ((n_tokens,), np.int32), "domains.npy": ((n_tokens,), np.int16),
              experts_name(0): ((n_tokens, TOP_K), np.int16), weights_name(0): ((n_tokens, TOP_K), np.float32),
              entropy_name(0): ((n_tokens,), np.float32)}
    arrays = {name: np.lib.format.open_memmap(path / name, "w+", dtype, shape) for name, (shape, dtype) in shapes.items()}
    rng = np.random.default_rng(0)
    for start in range(0, n_tokens, 1 << 20):
        rows = slice(start, min(start + (1 << 20), n_tokens))
        size = rows.stop - rows.start
        arrays["token_ids.npy"][rows] = rng.integers(0, VOCAB, size)
        arrays["domains.npy"][rows] = np.arange(rows.start, rows.stop) * 2 // n_tokens
        first = rng.integers(0, N_EXPERTS, size)
        arrays[experts_name(0)][rows] = np.stack([first, (first + 1 + rng.integers(0, N_EXPERTS - 1, size))
                                                  % N_EXPERTS], axis=1)
        arrays[weights_name(0)][rows] = rng.random((size, TOP_K))
        arrays[entropy_name(0)][rows] = rng.random(size)
    for array in arrays.values():
        array.flush()
    meta = {"format": 1, "moe_layers": [0], "n_experts": N_EXPERTS, "top_k": TOP_K, "domains": ["a", "b"],
            "checkpoint": None, "seq_len": SEQ_LEN, "n_tokens": n_tokens, "entropy": True}
    (path / META).write_text(json.dumps(meta))
    return Trace(path)


def peak_bytes(trace: Trace) -> int:
    tracemalloc.start()
    try:
        trace_numbers(trace, lambda ids: " ".join(map(str, ids)), VOCAB, tokens_per_batch=4096)
        batch_max_vio(trace.experts(0), N_EXPERTS, 4096)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_three_times_the_tokens_take_no_more_memory(tmp_path):
    small = peak_bytes(synthetic_trace(tmp_path / "small", 1_200_000))
    large = peak_bytes(synthetic_trace(tmp_path / "large", 3_600_000))
    assert large < 1.25 * small, (small, large)
    assert large < 400 * 2**20  # chunks of 2^20 tokens: a few hundred MB at most, the arrays alone would be 96 MB
