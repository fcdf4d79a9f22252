"""Requests are refused at construction, or at submit when they do not fit the model, with the field and value."""

import pytest

from dsmoe.serve import CompletionRequest, Engine
from train.tiny import MODEL, tiny_model


@pytest.mark.parametrize("fields, message", [
    (dict(prompt_ids=[]), "prompt_ids is empty"),
    (dict(max_tokens=-1), r"max_tokens=-1 must be >= 0"),
    (dict(n=0), r"n=0 must be >= 1"),
    (dict(logprobs=21), r"logprobs=21 must be in \[0, 20\]"),
    (dict(stop=["x", ""]), r"stop=\['x', ''\] holds an empty string"),
    (dict(temperature=-1.0), r"temperature=-1.0 must be >= 0"),
    (dict(top_p=0.0), r"top_p=0.0 must be in \(0, 1\]"),
])
def test_an_invalid_request_is_refused_naming_its_field(fields, message):
    with pytest.raises(ValueError, match=message):
        CompletionRequest(**{"prompt_ids": [1, 2], **fields})


@pytest.mark.parametrize("fields, message", [
    (dict(prompt_ids=[1] * 60, max_tokens=5), r"60 tokens and max_tokens=5 exceed the model's max_seq_len=64"),
    (dict(prompt_ids=[1, MODEL["vocab_size"]]), r"ids outside the vocabulary \[0, 512\)"),
    (dict(prompt_ids=[1], stop=["\n"]), r"needs an engine with a detokenizer"),
])
def test_a_request_that_does_not_fit_the_engine_is_refused_at_submit(fields, message):
    engine = Engine(tiny_model())
    with pytest.raises(ValueError, match=message):
        engine.submit(CompletionRequest(**fields))
    assert engine.n_waiting == 0
