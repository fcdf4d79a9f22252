"""generate_batch(..., compile_decode=True): the torch.compile'd one-token step gives the tokens of eager decoding,
for one prompt and for a left-padded batch whose rows stop at EOS, and compiles once for every cache length."""

import gc
import weakref

import pytest
import torch

from dsmoe.inference import SamplingConfig, generate, generate_batch
from dsmoe.inference.compiled import compiled_decode_step
from train.tiny import tiny_model

# MLA with the absorbed decoding path, a dense first layer, a shared expert: most of the decoding graph
CONFIG = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
              rope_interleave=True, mla_absorb=True, first_k_dense_replace=1, n_shared_experts=1)
PROMPTS = [[5, 17, 260, 3, 99, 7, 8], [11, 12], [300, 301, 302, 303]]
GREEDY = SamplingConfig(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def model():
    torch._dynamo.reset()
    return tiny_model(**CONFIG).eval()


@torch.no_grad()
def test_compiled_step_logits_follow_eager_ones_and_the_cache_length_never_recompiles(model):
    eager_cache, compiled_cache = model.new_cache(40), model.new_cache(40)
    prompt = torch.tensor([PROMPTS[0]])
    model(prompt, cache=eager_cache), model(prompt, cache=compiled_cache)
    step = compiled_decode_step(model)
    token = torch.tensor([[42]])
    for n_step in range(20):
        with torch._dynamo.config.patch(error_on_recompile=n_step > 0):  # one graph for every cache length
            compiled = step(token, cache=compiled_cache).logits
        eager = model(token, cache=eager_cache).logits
        assert (compiled - eager).abs().max() <= 1e-5
        token = eager[:, -1:].argmax(-1)
    assert compiled_cache.length == eager_cache.length == len(PROMPTS[0]) + 20


def test_one_prompt_decodes_the_eager_tokens_greedy_and_sampled(model):
    assert generate(model, PROMPTS[0], GREEDY, compile_decode=True) == generate(model, PROMPTS[0], GREEDY)
    sampled = SamplingConfig(max_new_tokens=12, temperature=1.0, top_k=None, seed=5)
    assert generate(model, PROMPTS[0], sampled, compile_decode=True) == generate(model, PROMPTS[0], sampled)


def test_a_padded_batch_with_a_row_stopping_at_eos_decodes_the_eager_tokens(model):
    eos = generate_batch(model, PROMPTS, GREEDY)[1][2]  # row 1 stops after its third token
    stopping = SamplingConfig(max_new_tokens=12, temperature=0.0, eos_token_id=eos)
    expected = generate_batch(model, PROMPTS, stopping)
    assert len(expected[1]) == 3
    assert generate_batch(model, PROMPTS, stopping, compile_decode=True) == expected


def test_a_model_that_was_decoded_compiled_can_still_be_freed():
    model = tiny_model()
    generate(model, [1, 2], SamplingConfig(max_new_tokens=3, temperature=0.0), compile_decode=True)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None
