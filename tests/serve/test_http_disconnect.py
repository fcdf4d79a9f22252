"""A client that leaves before its unstreamed answer gets its sequences cancelled, freeing their slots."""

import asyncio

import pytest

pytest.importorskip("fastapi")

from dsmoe.serve import Engine, EngineConfig  # noqa: E402
from dsmoe.serve.http.completion_body import parse_completion_body  # noqa: E402
from dsmoe.serve.http.completions import CompletionRun  # noqa: E402
from dsmoe.serve.http.metrics import ServerMetrics  # noqa: E402
from train.tiny import tiny_model  # noqa: E402


class CharTokenizer:
    def decode(self, ids: list[int]) -> str:
        return "".join(map(chr, ids))


def test_a_client_gone_before_the_answer_cancels_its_sequences():
    engine = Engine(tiny_model(), EngineConfig())  # never stepped: the choices would wait forever
    body = parse_completion_body({"prompt": [40, 41], "n": 3, "max_tokens": 5})

    async def ask():
        run = CompletionRun(body, engine, CharTokenizer(), "tiny", ServerMetrics(engine))
        answer = await run.answer(disconnected=lambda: asyncio.sleep(0, result=True))
        return answer, run

    answer, run = asyncio.run(ask())
    assert answer is None and all(choice.stream.cancelled for choice in run.choices)
    engine.step()
    assert engine.n_waiting == 0 and engine.n_running == 0
