"""Padded batches: positions count each row's real tokens from 0 (through the KV cache too), and attention
masks let a query see only the real keys at or before it, and itself (so no softmax row is empty).

RoPE attention depends only on position differences, so a wrong but constant offset per row would leave
logits equal up to rounding; the positions are therefore checked here directly."""

import torch

from dsmoe.model.kv_cache import KVCache
from dsmoe.model.padding import Padding, visible_keys

T, F = True, False


def build(mask: list[list[bool]] | None, cache: KVCache, batch: int = 2, length: int = 1) -> Padding:
    mask_BL = None if mask is None else torch.tensor(mask)
    padding = Padding.build(mask_BL, cache, torch.zeros(batch, length if mask is None else len(mask[0]),
                                                        dtype=torch.long))
    cache.length += padding.real_BL.shape[1]  # as the model advances it after its layers
    return padding


def test_positions_start_at_each_row_first_real_token_and_continue_through_the_cache():
    cache = KVCache(n_layers=1, max_len=16)
    prefill = build([[F, F, T, T], [T, T, T, T]], cache)
    assert prefill.position_ids_BL[prefill.real_BL].tolist() == [0, 1, 0, 1, 2, 3]
    row_1_stopped = build([[T], [F]], cache)
    assert row_1_stopped.position_ids_BL.tolist() == [[2], [4]]
    unmasked = build(None, cache)  # no mask, but the cache holds pads: positions still per row
    assert unmasked.position_ids_BL.tolist() == [[3], [4]]


def test_no_mask_and_no_padded_cache_means_no_padding():
    assert Padding.build(None, KVCache(n_layers=1, max_len=8), torch.zeros(2, 3, dtype=torch.long)) is None
    assert Padding.build(None, None, torch.zeros(2, 3, dtype=torch.long)) is None


def test_a_left_pad_query_with_no_real_key_before_it_sees_itself_so_attention_stays_finite():
    visible_LS = visible_keys(torch.tensor([[F, F, T]]), n_query=3)[0, 0]
    assert visible_LS.tolist() == [[T, F, F], [F, T, F], [F, F, T]]


def test_a_query_sees_the_real_keys_at_or_before_it_and_itself_never_a_later_key_or_another_pad():
    real_keys_BS = torch.tensor([[F, T, F, T, T]])  # a pad inside the cached keys too (a row that had stopped)
    visible_LS = visible_keys(real_keys_BS, n_query=3)[0, 0]
    assert visible_LS.tolist() == [[F, T, T, F, F],   # position 2, a pad: real key 1 and itself
                                   [F, T, F, T, F],   # position 3: real keys 1 and 3
                                   [F, T, F, T, T]]   # position 4: real keys 1, 3 and 4
