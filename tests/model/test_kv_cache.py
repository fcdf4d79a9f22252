"""KV-cache decoding equals recomputing the whole sequence, and the cache enforces its length."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.model.kv_cache import KVCache

VOCAB, MAX_LEN = 64, 16


def make_model(**changes) -> DeepSeekMoEForCausalLM:
    values = dict(vocab_size=VOCAB, hidden_size=32, n_layers=3, n_heads=4, n_kv_heads=2, max_seq_len=MAX_LEN,
                  intermediate_size=48, moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1,
                  n_activated_experts=2, first_k_dense_replace=1)
    torch.manual_seed(0)
    return DeepSeekMoEForCausalLM(ModelConfig(**{**values, **changes})).eval()


def token_ids(batch=2, seq=12) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(0))


def decode_in_chunks(model, ids, chunk_sizes) -> torch.Tensor:
    cache, logits, start = model.new_cache(), [], 0
    for size in chunk_sizes:
        logits.append(model(ids[:, start:start + size], cache=cache).logits)
        start += size
    return torch.cat(logits, dim=1)


ROUTINGS = {"softmax_topk": {}, "sigmoid_topk": dict(router="sigmoid_topk"), "hash": dict(router="hash"),
            "deepseek_v4": dict(router="sqrtsoftplus_topk", n_hash_layers=1, swiglu_limit=1.0)}


@pytest.mark.parametrize("changes", ROUTINGS.values(), ids=ROUTINGS.keys())
@torch.no_grad()
def test_prefill_then_one_token_at_a_time_equals_full_recompute(changes):
    model, ids = make_model(**changes), token_ids()
    full = model(ids).logits
    incremental = decode_in_chunks(model, ids, [5] + [1] * 7)
    assert (incremental - full).abs().max() <= 1e-5


@torch.no_grad()
def test_prefill_in_two_chunks_equals_full_recompute():
    model, ids = make_model(), token_ids()
    assert (decode_in_chunks(model, ids, [7, 5]) - model(ids).logits).abs().max() <= 1e-5


@torch.no_grad()
def test_cache_length_advances_by_the_tokens_of_each_forward():
    model = make_model()
    cache = model.new_cache()
    model(token_ids(seq=5), cache=cache)
    model(token_ids(seq=1), cache=cache)
    assert cache.length == 6


@torch.no_grad()
def test_decoding_past_max_seq_len_raises():
    model = make_model()
    cache = model.new_cache()
    model(token_ids(seq=MAX_LEN), cache=cache)
    with pytest.raises(ValueError, match=f"sequence of {MAX_LEN + 1} tokens exceeds max_seq_len={MAX_LEN}"):
        model(token_ids(seq=1), cache=cache)


def test_cache_update_past_max_len_raises():
    cache = KVCache(n_layers=1, max_len=4)
    keys = torch.zeros(1, 2, 3, 8)
    cache.update(0, keys, keys)
    cache.length = 3
    with pytest.raises(ValueError, match="at most max_len=4 tokens; asked for 6"):
        cache.update(0, keys, keys)


def test_cache_update_returns_all_valid_keys_and_values():
    cache = KVCache(n_layers=1, max_len=8)
    first, second = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 2, 4)
    cache.update(0, first, -first)
    cache.length = 3
    keys, values = cache.update(0, second, -second)
    assert torch.equal(keys, torch.cat([first, second], dim=2)) and torch.equal(values, -keys)
