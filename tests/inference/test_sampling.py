"""Sampling rules (greedy, top-k, nucleus, seeding) and KV-cache generation against full recomputation."""

import math
import re

import pytest
import torch

from dsmoe.inference import SamplingConfig, filter_top_k, filter_top_p, generate, sample_next
from train.tiny import tiny_model

LOGITS = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))


def kept(logits: torch.Tensor) -> list[list[int]]:
    return [torch.isfinite(row).nonzero().flatten().tolist() for row in logits]


def test_temperature_zero_is_greedy_argmax():
    assert torch.equal(sample_next(LOGITS, 0.0, top_k=5, top_p=0.5, generator=None), LOGITS.argmax(-1))


def test_top_k_keeps_the_k_largest_logits_unchanged():
    filtered = filter_top_k(LOGITS, 7)
    assert kept(filtered) == [sorted(row.topk(7).indices.tolist()) for row in LOGITS]
    assert torch.equal(filtered[torch.isfinite(filtered)], LOGITS[torch.isfinite(filtered)])


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])  # sorted: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()
    assert kept(filter_top_p(logits, 0.4)) == [[1]]
    assert kept(filter_top_p(logits, 0.75)) == [[1, 3]]
    assert kept(filter_top_p(logits, 0.85)) == [[0, 1, 3]]
    assert kept(filter_top_p(logits, 1.0)) == [[0, 1, 2, 3]]


def test_sampling_only_draws_kept_tokens():
    generator = torch.Generator().manual_seed(0)
    draws = {int(sample_next(LOGITS[:1], 1.0, 3, None, generator)) for _ in range(200)}
    assert draws <= set(LOGITS[0].topk(3).indices.tolist()) and len(draws) > 1


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


PROMPT = [5, 17, 260, 3, 99]


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    def sample(seed):
        return generate(model, PROMPT, SamplingConfig(max_new_tokens=16, temperature=1.0, top_k=None, seed=seed))
    assert sample(0) == sample(0) != sample(1)


def test_kv_cache_generation_equals_greedy_recomputation_of_the_whole_sequence(model):
    new = generate(model, PROMPT, SamplingConfig(max_new_tokens=12, temperature=0.0))
    sequence = list(PROMPT)
    with torch.no_grad():
        for _ in range(12):
            sequence.append(int(model(torch.tensor([sequence])).logits[0, -1].argmax()))
    assert new == sequence[len(PROMPT):]


def test_streaming_callback_receives_every_token_in_order(model):
    received = []
    new = generate(model, PROMPT, SamplingConfig(max_new_tokens=10, temperature=0.7, top_p=0.9), received.append)
    assert received == new and len(new) == 10


def test_a_long_prompt_is_cut_from_the_left_to_fit_max_seq_len(model):
    long_prompt = list(range(100))  # max_seq_len is 64
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    assert generate(model, long_prompt, greedy) == generate(model, long_prompt[-56:], greedy)


@pytest.mark.parametrize("fields, message", [
    (dict(max_new_tokens=0), "max_new_tokens=0 must be >= 1"),
    (dict(temperature=-0.5), "temperature=-0.5 must be >= 0"),
    (dict(top_k=0), "top_k=0 must be >= 1"),
    (dict(top_p=0.0), "top_p=0.0 must be in (0, 1]"),
    (dict(top_p=1.5), "top_p=1.5 must be in (0, 1]"),
    (dict(temperature=math.nan), "temperature=nan must be >= 0"),
])
def test_bad_sampling_settings_are_named(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SamplingConfig(**fields)


def test_more_new_tokens_than_the_context_is_refused(model):
    with pytest.raises(ValueError, match="max_new_tokens=64 leaves no room for a prompt within max_seq_len=64"):
        generate(model, PROMPT, SamplingConfig(max_new_tokens=64))
