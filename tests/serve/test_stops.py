"""What ends a sequence: the EOS token (kept), a stop string (its offset in the text given), or max_tokens."""

import pytest

from dsmoe.serve import Engine, EngineConfig
from serve.engine_runs import PROMPTS, engine_for, greedy, run_all
from train.tiny import tiny_model


def letters(token_ids: list[int]) -> str:
    """A stand-in detokenizer: one letter per token."""
    return "".join(chr(ord("a") + token % 26) for token in token_ids)


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


@pytest.fixture(scope="module")
def free_run(model):
    return run_all(engine_for(model), [greedy(PROMPTS[0], max_tokens=8)])[0].token_ids


def test_a_sequence_stops_after_the_eos_token_and_keeps_it(model, free_run):
    eos = free_run[2]
    completion = run_all(Engine(model, EngineConfig(eos_token_id=eos)), [greedy(PROMPTS[0], max_tokens=8)])[0]
    assert completion.token_ids == free_run[:free_run.index(eos) + 1]
    assert completion.finished.reason == "stop" and completion.finished.stop_at is None


def test_a_stop_string_ends_the_sequence_and_says_where_its_text_begins(model, free_run):
    text = letters(free_run)
    stop = text[3:5]
    engine = Engine(model, detokenize=letters)
    completion = run_all(engine, [greedy(PROMPTS[0], max_tokens=8, stop=["zzzzzzzz", stop])])[0]
    assert completion.finished.reason == "stop" and completion.finished.stop_at == text.index(stop)
    assert completion.token_ids == free_run[:text.index(stop) + len(stop)]  # one letter per token


def test_a_sequence_that_nothing_stops_ends_at_max_tokens(model, free_run):
    completion = run_all(Engine(model, detokenize=letters), [greedy(PROMPTS[0], max_tokens=8, stop="#")])[0]
    assert completion.token_ids == free_run and completion.finished.reason == "length"
