"""A forward that raises fails the sequences of that step only, and the engine goes on serving."""

import pytest

from serve.engine_runs import PROMPTS, engine_for, greedy, step_until_idle
from train.tiny import tiny_model

POISON = 13  # a prompt holding this token id makes its prefill raise


@pytest.fixture()
def model():
    model = tiny_model().eval()
    model.fail_decoding = False

    def fail_on_request(module, args):
        input_ids_BL = args[0]
        prefill, decoding = input_ids_BL.shape[1] > 1, input_ids_BL.shape[1] == 1
        if (prefill and bool((input_ids_BL == POISON).any())) or (decoding and module.fail_decoding):
            module.fail_decoding = False
            raise RuntimeError("injected failure")
    model.register_forward_pre_hook(fail_on_request)
    return model


def test_a_failed_prefill_fails_its_sequences_and_the_running_ones_go_on(model):
    engine = engine_for(model)
    running = engine.submit(greedy(PROMPTS[0], max_tokens=5))[0]
    engine.step()
    poisoned = engine.submit(greedy([1, POISON, 2], max_tokens=5))[0]
    step_until_idle(engine)
    failed = poisoned.collect().finished
    assert (failed.reason, failed.step, failed.error) == ("error", 2, "RuntimeError: injected failure")
    assert running.collect().finished.reason == "length"


def test_a_failed_decoding_step_fails_the_running_sequences_and_the_waiting_ones_are_served_after(model):
    engine = engine_for(model, max_batch=2)
    streams = [engine.submit(greedy(prompt, max_tokens=4))[0] for prompt in PROMPTS[:3]]
    engine.step()
    model.fail_decoding = True
    engine.step()
    step_until_idle(engine)
    completions = [stream.collect() for stream in streams]
    assert [completion.finished.reason for completion in completions] == ["error", "error", "length"]
    assert [len(completion.token_ids) for completion in completions] == [2, 2, 4]
    assert completions[2].steps[0] == 3  # admitted the step after the failure, into a fresh batch
