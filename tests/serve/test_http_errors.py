"""Refused requests, seen raw through curl: OpenAI's error body, the status, and the field at fault."""

import json

import pytest

from serve.conftest import API_KEY, MODEL_NAME
from serve.server_process import curl

AUTHORIZED = (f"Authorization: Bearer {API_KEY}",)


def post(server, body: str, path: str = "/v1/completions", headers=AUTHORIZED):
    return curl(f"{server.url}{path}", body, headers)


@pytest.mark.parametrize("field, value", [("max_tokens", "ten"), ("temperature", -1), ("n", 0), ("logprobs", 100),
                                          ("top_p", 1.5), ("stream", "yes"), ("prompt", [])])
def test_a_bad_field_is_a_400_naming_it(server, field, value):
    status, _, body = post(server, json.dumps({"model": MODEL_NAME, "prompt": "To be", field: value}))
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == field and field in body["error"]["message"]


def test_malformed_json_is_a_400(server):
    status, _, body = post(server, '{"prompt": "To be", ')
    assert status == 400 and "not valid JSON" in body["error"]["message"]


def test_an_unknown_model_is_a_404(server):
    status, _, body = post(server, json.dumps({"model": "gpt-4", "prompt": "To be"}))
    assert status == 404 and body["error"]["code"] == "model_not_found"


def test_a_prompt_too_long_is_a_400_naming_the_lengths(server):
    status, _, body = post(server, json.dumps({"prompt": list(range(60)), "max_tokens": 10}))
    assert status == 400
    assert "60 tokens" in body["error"]["message"] and "max_seq_len=64" in body["error"]["message"]


def test_chat_completions_explain_the_base_model_has_no_chat_template(server):
    status, _, body = post(server, json.dumps({"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}]}),
                           "/v1/chat/completions")
    assert status == 400 and "no chat template" in body["error"]["message"]


@pytest.mark.parametrize("headers", [(), ("Authorization: Bearer wrong",), (f"Authorization: {API_KEY}",)])
def test_without_the_api_key_every_endpoint_but_health_is_a_401(server, headers):
    for path in ("/v1/models", "/metrics"):
        status, _, body = curl(f"{server.url}{path}", headers=headers)
        assert status == 401 and body["error"]["type"] == "authentication_error"
    assert curl(f"{server.url}/health", headers=headers)[0] == 200


def test_a_body_over_the_limit_is_a_413(server):
    status, _, body = post(server, json.dumps({"prompt": "a" * 1_100_000}))
    assert status == 413 and "1000000 bytes" in body["error"]["message"]
