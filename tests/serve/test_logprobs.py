"""Log-probabilities are the log_softmax of the model's logits: each generated token's, with its top alternatives,
and with echo the prompt's own tokens' (how lm-evaluation-harness scores choices, max_tokens=0)."""

import pytest
import torch

from dsmoe.serve import CompletionRequest
from serve.engine_runs import PROMPTS, engine_for, greedy, run_all
from train.tiny import tiny_model

TOLERANCE = 1e-5  # a padded batch's logits differ from a plain forward's by float rounding


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


def plain_logprobs(model, token_ids: list[int]) -> torch.Tensor:
    """[L, V]: the log_softmax of one unpadded, uncached forward over the tokens."""
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0].float().log_softmax(dim=-1)


def test_each_token_logprob_and_its_top_alternatives_are_the_log_softmax_of_the_models_logits(model):
    sampled = CompletionRequest(PROMPTS[1], max_tokens=6, temperature=1.0, seed=3, logprobs=3)
    completions = run_all(engine_for(model), [greedy(PROMPTS[0], max_tokens=6, logprobs=3), sampled])
    for prompt, completion in zip(PROMPTS, completions):
        expected_LV = plain_logprobs(model, prompt + completion.token_ids)[len(prompt) - 1:-1]
        for position, (token, scored) in enumerate(zip(completion.token_ids, completion.token_logprobs)):
            top = expected_LV[position].topk(3)
            assert scored.token_id == token
            assert abs(scored.logprob - float(expected_LV[position, token])) <= TOLERANCE
            assert [token_id for token_id, _ in scored.top] == top.indices.tolist()
            assert torch.allclose(torch.tensor([value for _, value in scored.top]), top.values, atol=TOLERANCE)


def test_echo_scores_each_prompt_token_as_a_plain_forward_does_and_max_tokens_0_generates_nothing(model):
    prompts = PROMPTS[:3]  # prefilled together, left-padded
    completions = run_all(engine_for(model), [greedy(prompt, max_tokens=0, echo=True, logprobs=2)
                                              for prompt in prompts])
    for prompt, completion in zip(prompts, completions):
        expected_LV = plain_logprobs(model, prompt)
        assert completion.prompt_logprobs[0] is None and completion.token_ids == []
        assert completion.finished.reason == "length"
        for position, scored in enumerate(completion.prompt_logprobs[1:], start=1):
            assert scored.token_id == prompt[position] and len(scored.top) == 2
            assert abs(scored.logprob - float(expected_LV[position - 1, prompt[position]])) <= TOLERANCE


def test_without_logprobs_no_token_is_scored(model):
    completion = run_all(engine_for(model), [greedy(PROMPTS[0], max_tokens=3)])[0]
    assert completion.token_logprobs == [None] * 3 and completion.prompt_logprobs is None
