"""A server shutting down (app.state.draining, set on SIGTERM) answers every request 503 in OpenAI's schema."""

import pytest

pytest.importorskip("fastapi")

from starlette.testclient import TestClient  # noqa: E402

from dsmoe.serve import Engine  # noqa: E402
from dsmoe.serve.http import ServedModel, build_app  # noqa: E402
from train.tiny import tiny_model  # noqa: E402


def test_a_draining_server_answers_503():
    app = build_app(ServedModel("tiny", Engine(tiny_model()), tokenizer=None))
    client = TestClient(app)
    assert client.get("/health").status_code == 200
    app.state.draining = True
    for response in (client.get("/health"), client.post("/v1/completions", json={"prompt": [1, 2]})):
        assert response.status_code == 503 and response.json()["error"]["code"] == "shutting_down"
