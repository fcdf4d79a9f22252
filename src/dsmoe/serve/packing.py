"""The running batch's KV cache stays left-padded: each row's cached tokens are the last ones of its row. Rows
join (from a prefill's cache, left-padded the same way) and leave by being copied into a new cache as long as
the longest of them, so the cache never holds a finished row, nor more pads than the batch's lengths need."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dsmoe.model.kv_cache import KVCache


@dataclass(frozen=True)
class CachedRow:
    """Row `row` of `cache`, whose last n_cached positions hold the row's tokens."""

    cache: KVCache
    row: int
    n_cached: int

    def span(self, buffers: list[torch.Tensor | None], layer: int) -> torch.Tensor:
        """[H, n_cached, X]: this row's entries of one layer's keys or values."""
        return buffers[layer][self.row, :, self.cache.length - self.n_cached:self.cache.length]


def left_padded(rows: list[CachedRow], stream: str, layer: int, length: int, capacity: int) -> torch.Tensor:
    """[B, H, capacity, X]: each row's entries of one layer's `stream` ("keys" or "values") ending at `length`."""
    first_BHMX = getattr(rows[0].cache, stream)[layer]
    packed_BHMX = first_BHMX.new_zeros(len(rows), first_BHMX.shape[1], capacity, first_BHMX.shape[3])
    for i, row in enumerate(rows):
        packed_BHMX[i, :, length - row.n_cached:length] = row.span(getattr(row.cache, stream), layer)
    return packed_BHMX


def pack_rows(rows: list[CachedRow], capacity: int) -> KVCache:
    """A cache of room `capacity` holding the rows, left-padded to the longest; its pads are marked (real_BM) only
    when some row is shorter, so a batch of equal rows decodes on the model's plain causal path."""
    length = max(row.n_cached for row in rows)
    n_layers = len(rows[0].cache.keys)
    packed = KVCache(n_layers, capacity)
    packed.keys = [left_padded(rows, "keys", layer, length, capacity) for layer in range(n_layers)]
    packed.values = [left_padded(rows, "values", layer, length, capacity) for layer in range(n_layers)]
    packed.length = length
    if any(row.n_cached < length for row in rows):
        packed.real_BM = torch.ones(len(rows), capacity, dtype=torch.bool, device=packed.keys[0].device)
        for i, row in enumerate(rows):
            packed.real_BM[i, :length - row.n_cached] = False
    return packed
