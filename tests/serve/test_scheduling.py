"""Continuous batching: a request joins at the next step, not after the others finish; finished and cancelled
sequences free their slots at the next step; the waiting queue is bounded; tokens stream as they are sampled."""

import asyncio

import pytest

from dsmoe.serve import PromptScored, QueueFull, TokenEvent
from serve.engine_runs import PROMPTS, engine_for, greedy, step_until_idle
from train.tiny import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


def test_a_request_submitted_while_others_decode_is_admitted_at_the_next_step(model):
    engine = engine_for(model)
    first = engine.submit(greedy(PROMPTS[0], max_tokens=10))[0]
    for _ in range(3):
        engine.step()
    joining = engine.submit(greedy(PROMPTS[1], max_tokens=4))[0]
    step_until_idle(engine)
    first_steps, joining_steps = first.collect().steps, joining.collect().steps
    assert joining_steps[0] == 4  # its prefill's token, and then one token a step beside the first request
    assert joining_steps == [4, 4, 5, 6] and first_steps[-1] == 9 > joining_steps[-1]


def test_a_full_batch_admits_a_waiting_request_the_step_after_a_sequence_finishes(model):
    engine = engine_for(model, max_batch=1)
    short, waiting = [engine.submit(greedy(prompt, max_tokens=3))[0] for prompt in PROMPTS[:2]]
    step_until_idle(engine)
    assert short.collect().steps == [1, 1, 2] and waiting.collect().steps[0] == 3


def test_cancelling_a_running_sequence_frees_its_slot_at_the_next_step(model):
    engine = engine_for(model, max_batch=1)
    running, waiting = [engine.submit(greedy(prompt, max_tokens=20))[0] for prompt in PROMPTS[:2]]
    engine.step()
    running.cancel()
    engine.step()
    assert engine.n_running == 1 and engine.n_waiting == 0
    cancelled = running.collect()
    assert cancelled.finished.reason == "cancelled" and cancelled.finished.step == 2 and cancelled.steps == [1, 1]
    waiting.cancel()  # a cancelled sequence also leaves the queue, or a slot, without a token more
    engine.step()
    assert waiting.collect().steps == [2, 2] and engine.n_running == 0


def test_a_sequence_whose_asyncio_loop_closed_is_cancelled_and_leaves_its_slot(model):
    engine = engine_for(model)

    async def submit_and_disconnect():
        return engine.submit(greedy(PROMPTS[0], max_tokens=20))[0]
    stream = asyncio.run(submit_and_disconnect())
    engine.step()  # its tokens find no loop to go to
    assert stream.cancelled and engine.n_running == 1
    engine.step()
    assert engine.n_running == 0


def test_submitting_beyond_max_queue_raises_queue_full_and_queues_nothing(model):
    engine = engine_for(model, max_queue=3)
    engine.submit(greedy(PROMPTS[0], n=2))
    with pytest.raises(QueueFull, match=r"max_queue=3 waiting sequences and 2 wait; 2 more do not fit"):
        engine.submit(greedy(PROMPTS[1], n=2))
    assert engine.n_waiting == 2
    engine.submit(greedy(PROMPTS[1]))
    assert engine.n_waiting == 3


def test_each_token_is_sent_as_soon_as_it_is_sampled(model):
    engine = engine_for(model)
    stream = engine.submit(greedy(PROMPTS[0], max_tokens=5, echo=True))[0]
    engine.step()
    events = [stream.events.get_nowait(), stream.events.get_nowait(), stream.events.get_nowait()]
    assert isinstance(events[0], PromptScored) and [type(event) for event in events[1:]] == [TokenEvent] * 2
    assert stream.events.empty()  # nothing more until the next step
    engine.step()
    assert isinstance(stream.events.get_nowait(), TokenEvent)
