"""Repacking the running batch's KV cache: each row's cached entries move to the right end of its new row, the
pads before them are marked, and rows of equal length leave the cache unpadded."""

import torch

from dsmoe.inference.generate import left_pad
from dsmoe.serve.packing import CachedRow, pack_rows
from train.tiny import tiny_model


def prefilled(model, prompts):
    input_ids_BL, real_BL = left_pad(prompts, torch.device("cpu"))
    cache = model.new_cache(max_len=input_ids_BL.shape[1])
    with torch.no_grad():
        model(input_ids_BL, cache=cache, attention_mask_BL=real_BL)
    return cache


def test_rows_from_two_caches_keep_their_entries_right_aligned_with_the_pads_marked():
    model = tiny_model().eval()
    first, second = prefilled(model, [[1, 2, 3], [4, 5, 6, 7, 8]]), prefilled(model, [[9, 10]])
    rows = [CachedRow(second, 0, 2), CachedRow(first, 1, 5), CachedRow(first, 0, 3)]
    packed = pack_rows(rows, capacity=9)
    assert packed.length == 5 and packed.keys[0].shape[2] == 9
    for layer in range(model.config.n_layers):
        for i, row in enumerate(rows):
            assert torch.equal(packed.keys[layer][i, :, 5 - row.n_cached:5], row.span(row.cache.keys, layer))
            assert torch.equal(packed.values[layer][i, :, 5 - row.n_cached:5], row.span(row.cache.values, layer))
    assert packed.real_BM[:, :5].tolist() == [[False] * 3 + [True] * 2, [True] * 5, [False] * 2 + [True] * 3]


def test_rows_of_equal_length_are_packed_without_pad_marks():
    model = tiny_model().eval()
    cache = prefilled(model, [[1, 2, 3], [4, 5, 6]])
    assert pack_rows([CachedRow(cache, 1, 3), CachedRow(cache, 0, 3)], capacity=4).real_BM is None
