"""A choice's text as the server sends it: cut at the engine's stop, and never streaming what may begin a stop."""

import pytest

pytest.importorskip("fastapi")

from dsmoe.serve import Finished, TokenEvent  # noqa: E402
from dsmoe.serve.http.choices import ChoiceOutput, sendable_length  # noqa: E402


def decode(ids: list[int]) -> str:
    return "".join(map(chr, ids))


@pytest.mark.parametrize("text, stops, sendable", [("hello wor", ("world",), 6), ("hello world!", ("world",), 6),
                                                   ("abc\ufffd", (), 3), ("abc", ("x", "cd"), 2), ("abc", ("xy",), 3)])
def test_a_stream_holds_back_a_partial_character_and_what_may_begin_a_stop(text, stops, sendable):
    assert sendable_length(text, stops) == sendable


def test_streamed_deltas_add_up_to_the_answer_cut_at_the_stop():
    text = "abXYcd"
    events = [*(TokenEvent(ord(char), None, step) for step, char in enumerate(text)), Finished("stop", 6, stop_at=2)]
    streamed = ChoiceOutput(0, [1], "p", decode, ("XY",), False, False)
    deltas = [delta["text"] for event in events if (delta := streamed.update(event)) is not None]
    answer = ChoiceOutput(0, [1], "p", decode, ("XY",), False, False).answer(events)
    assert "".join(deltas) == answer["text"] == "ab" and not any("X" in delta for delta in deltas)
    assert answer["finish_reason"] == "stop"
