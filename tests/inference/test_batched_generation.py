"""Batched generation of left-padded prompts equals generating each prompt alone: padded logits at real
positions (the model's attention_mask_BL), greedy tokens, seeded samples and per-row EOS stops; pads never
reach the routers."""

import pytest
import torch

from dsmoe.inference import SamplingConfig, generate, generate_batch
from dsmoe.inference.generate import left_pad
from train.tiny import tiny_model

MLA = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
           rope_interleave=True)
CONFIGS = {
    "mha_gqa_moe": dict(n_heads=4, n_kv_heads=2, first_k_dense_replace=1, n_shared_experts=1),
    "mla_moe": MLA,
    "mla_absorbed_moe": {**MLA, "mla_absorb": True},
}
PROMPTS = [[5, 17, 260, 3, 99, 7, 8], [11, 12], [300, 301, 302, 303], [42]]
GREEDY = SamplingConfig(max_new_tokens=10, temperature=0.0)


@pytest.fixture(scope="module", params=CONFIGS, ids=CONFIGS.keys())
def model(request):
    return tiny_model(**CONFIGS[request.param]).eval()


def padded_logits(model, prompts, pad_token=0) -> list[torch.Tensor]:
    """Each prompt's logits [len, V] at its real positions, from one forward over the left-padded batch."""
    input_ids_BL, real_BL = left_pad(prompts, torch.device("cpu"))
    input_ids_BL[~real_BL] = pad_token
    with torch.no_grad():
        logits_BLV = model(input_ids_BL, attention_mask_BL=real_BL).logits
    return [logits_BLV[row, real_BL[row]] for row in range(len(prompts))]


def greedy_alone(model, prompt: list[int], n_new: int) -> list[int]:
    """The reference: recompute the whole unpadded sequence for every new token, no cache, no mask."""
    sequence = list(prompt)
    with torch.no_grad():
        for _ in range(n_new):
            sequence.append(int(model(torch.tensor([sequence])).logits[0, -1].argmax()))
    return sequence[len(prompt):]


def test_padded_batch_logits_at_real_positions_equal_each_prompt_alone(model):
    with torch.no_grad():
        alone = [model(torch.tensor([prompt])).logits[0] for prompt in PROMPTS]
    for padded, expected in zip(padded_logits(model, PROMPTS), alone):
        assert (padded - expected).abs().max() <= 1e-5


def test_greedy_batched_generation_gives_the_tokens_of_each_prompt_generated_alone(model):
    batched = generate_batch(model, PROMPTS, GREEDY)
    assert batched == [greedy_alone(model, prompt, GREEDY.max_new_tokens) for prompt in PROMPTS]


def test_a_row_stops_at_eos_and_the_other_rows_go_on_unchanged(model):
    free = generate_batch(model, PROMPTS, GREEDY)
    eos = free[1][2]  # row 1 stops after its third token
    stopped = generate_batch(model, PROMPTS, SamplingConfig(max_new_tokens=10, temperature=0.0, eos_token_id=eos))
    expected = [tokens[:tokens.index(eos) + 1] if eos in tokens else tokens for tokens in free]
    assert stopped == expected and len(stopped[1]) == 3
    assert any(len(tokens) == GREEDY.max_new_tokens for tokens in stopped)


def test_each_row_samples_as_its_prompt_alone_with_the_same_seed_whatever_its_place_in_the_batch(model):
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, top_k=None, seed=3)
    alone = [generate(model, prompt, sampling) for prompt in PROMPTS]
    assert generate_batch(model, PROMPTS, sampling) == alone
    assert generate_batch(model, PROMPTS[::-1], sampling) == alone[::-1]
    assert alone != generate_batch(model, PROMPTS, GREEDY)  # it did sample


def test_streaming_callback_sees_every_row_token_in_order(model):
    received = []
    batched = generate_batch(model, PROMPTS, GREEDY, lambda row, token: received.append((row, token)))
    assert [[token for row, token in received if row == i] for i in range(len(PROMPTS))] == batched


ROUTERS = {"softmax_topk": {}, "sigmoid_topk": {}, "noisy_topk": {}, "hash": {}, "gshard": {},
           "switch": dict(n_activated_experts=1)}  # the capacity routers too: pads take no capacity


@pytest.mark.parametrize("router", ROUTERS)
def test_outputs_at_real_positions_do_not_depend_on_what_the_pads_hold(router):
    model = tiny_model(router=router, **ROUTERS[router]).eval()
    with_zeros, with_other_tokens = padded_logits(model, PROMPTS, 0), padded_logits(model, PROMPTS, 777 % 512)
    assert all(torch.equal(a, b) for a, b in zip(with_zeros, with_other_tokens))


@pytest.mark.parametrize("router", ["softmax_topk", "hash"])
def test_pads_are_not_routed_so_router_stats_count_real_tokens_only(router):
    model = tiny_model(router=router).eval()
    input_ids_BL, real_BL = left_pad(PROMPTS, torch.device("cpu"))
    with torch.no_grad():
        padded = model(input_ids_BL, attention_mask_BL=real_BL).router_stats
        alone = [model(torch.tensor([prompt])).router_stats for prompt in PROMPTS]
    n_real = sum(len(prompt) for prompt in PROMPTS)
    for layer, stats in enumerate(padded):
        assert int(stats.tokens_per_expert.sum()) == n_real * model.config.n_activated_experts
        assert torch.equal(stats.tokens_per_expert, sum(row[layer].tokens_per_expert for row in alone))


def test_an_attention_mask_of_another_shape_than_the_input_is_refused():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match=r"attention_mask_BL has shape \(2, 3\); it must match input_ids \(2, 4\)"):
        model(torch.zeros(2, 4, dtype=torch.long), attention_mask_BL=torch.ones(2, 3, dtype=torch.bool))
