"""A server of one slot and one waiting place: a full queue is a 429, and SIGTERM lets the request in flight
finish before the process exits 0."""

import json
import signal

import pytest

from serve.server_process import ServerProcess, curl

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def small_server(served_run):
    process = ServerProcess(served_run, "--max-batch", "1", "--max-queue", "1")
    yield process
    process.kill()


def test_more_choices_than_the_queue_holds_is_a_429_with_retry_after(small_server):
    status, headers, body = curl(f"{small_server.url}/v1/completions", json.dumps({"prompt": "To be", "n": 2}))
    assert status == 429 and headers["retry-after"] == "1" and body["error"]["code"] == "queue_full"


def test_sigterm_finishes_the_request_in_flight_then_exits_0(small_server):
    request = {"prompt": [40, 41], "max_tokens": 60, "temperature": 1.0, "seed": 1, "stream": True}
    lines = []
    with httpx.stream("POST", f"{small_server.url}/v1/completions", json=request, timeout=60) as response:
        for line in response.iter_lines():
            if line and not lines:
                small_server.process.send_signal(signal.SIGTERM)  # once the first chunk came
            lines += [line] if line else []
    stdout, _ = small_server.process.communicate(timeout=60)
    assert lines[-1] == "data: [DONE]"
    assert small_server.process.returncode == 0 and "http://127.0.0.1:" in stdout
    assert not small_server.healthy()
