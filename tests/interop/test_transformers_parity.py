"""Every supported transformers family, several configs each: from_transformers gives the same logits (fp32,
max abs difference <= 1e-5) and the same 32 greedy tokens, and to_transformers(from_transformers(m)) gives back
m's state dict bit for bit."""

import pytest
import torch

from dsmoe.interop.hf import from_transformers, to_transformers
from interop.hf_models import CASES, dsmoe_greedy, hf_greedy, hf_model, state_dicts_equal, token_batch
from model.hf_reference import TOLERANCE, max_abs_diff


@pytest.fixture(scope="module", params=CASES)
def converted(request):
    """(case name, transformers model, its dsmoe conversion)."""
    reference = hf_model(request.param)
    return request.param, reference, from_transformers(reference)


@torch.no_grad()
def test_logits_equal_transformers(converted):
    _, reference, model = converted
    ids = token_batch()
    assert max_abs_diff(model(ids).logits, reference(ids).logits) <= TOLERANCE


def test_greedy_generation_is_identical_token_for_token(converted):
    _, reference, model = converted
    prompt = token_batch(batch=1, seq=8, seed=1)[0].tolist()
    assert dsmoe_greedy(model, prompt) == hf_greedy(reference, prompt)


def test_round_trip_gives_a_bit_identical_state_dict(converted):
    case, reference, model = converted
    back = to_transformers(model, CASES[case][0], attn_implementation="eager")
    assert type(back) is type(reference)
    assert state_dicts_equal(back.state_dict(), reference.state_dict())
