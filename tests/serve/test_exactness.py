"""A request's tokens do not depend on what else is in the batch: 8 different prompts submitted concurrently, at
different times, from asyncio, each complete as `generate` completes them alone (greedy, or sampled with a seed)."""

import asyncio

import pytest

from dsmoe.inference import SamplingConfig, generate
from dsmoe.serve import CompletionRequest
from serve.engine_runs import PROMPTS, engine_for, greedy, run_all, step_until_idle
from train.tiny import tiny_model

MLA = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
           rope_interleave=True)
CONFIGS = {"mha_gqa_moe": dict(n_heads=4, n_kv_heads=2, first_k_dense_replace=1, n_shared_experts=1), "mla_moe": MLA}
MAX_TOKENS = 8


@pytest.fixture(scope="module", params=CONFIGS, ids=CONFIGS.keys())
def model(request):
    return tiny_model(**CONFIGS[request.param]).eval()


async def submit_staggered(engine, requests):
    """Each request submitted from its own task, the i-th after i short sleeps, while the engine decodes."""
    async def one(i, request):
        await asyncio.sleep(0.003 * i)
        return await engine.submit(request)[0].collect_async()
    return await asyncio.gather(*(one(i, request) for i, request in enumerate(requests)))


@pytest.mark.parametrize("max_batch", [8, 3])
def test_greedy_completions_of_8_concurrent_prompts_equal_generate_alone(model, max_batch):
    expected = [generate(model, prompt, SamplingConfig(MAX_TOKENS, temperature=0.0)) for prompt in PROMPTS]
    with engine_for(model, max_batch=max_batch) as engine:
        completions = asyncio.run(submit_staggered(engine, [greedy(prompt, MAX_TOKENS) for prompt in PROMPTS]))
    assert [completion.token_ids for completion in completions] == expected
    assert {completion.finished.reason for completion in completions} == {"length"}


def test_greedy_completions_of_prompts_joining_one_a_step_equal_generate_alone(model):
    expected = [generate(model, prompt, SamplingConfig(MAX_TOKENS, temperature=0.0)) for prompt in PROMPTS]
    engine = engine_for(model, max_batch=3)  # rows join and leave a batch that is never empty, some wait
    streams = []
    for prompt in PROMPTS:
        streams += engine.submit(greedy(prompt, MAX_TOKENS))
        engine.step()
    step_until_idle(engine)
    completions = [stream.collect() for stream in streams]
    assert [completion.token_ids for completion in completions] == expected
    assert completions[1].steps[0] < completions[0].steps[-1]  # they did share batches


def test_a_seeded_request_samples_the_same_tokens_alone_in_any_batch_and_as_generate(model):
    def sampled(prompt, seed, n=1):
        return CompletionRequest(prompt, max_tokens=MAX_TOKENS, temperature=1.0, seed=seed, n=n)

    prompt = PROMPTS[0]
    alone = generate(model, prompt, SamplingConfig(MAX_TOKENS, temperature=1.0, top_k=None, seed=7))
    in_a_batch = run_all(engine_for(model), [sampled(other, seed=1) for other in PROMPTS[1:4]] + [sampled(prompt, 7)])
    engine = engine_for(model, max_batch=2)
    late = engine.submit(sampled(PROMPTS[4], seed=2))[0]
    engine.step()
    choices = engine.submit(sampled(prompt, seed=6, n=2))  # choice 1 draws from seed 6 + 1
    step_until_idle(engine)
    assert in_a_batch[-1].token_ids == alone == choices[1].collect().token_ids
    assert choices[0].collect().token_ids != alone and late.collect().finished.reason == "length"
