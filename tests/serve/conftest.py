"""Every test here runs torch on one thread (see train.tiny.one_torch_thread). The HTTP tests share one server
process on a tiny one-step run (started by the first test that asks for it, stopped by SIGTERM at the end)."""

from pathlib import Path

import pytest

from train.tiny import one_step_run, one_torch_thread  # noqa: F401

from serve.server_process import ServerProcess

API_KEY = "test-key-123"
MODEL_NAME = "tiny-moe"


@pytest.fixture(scope="session")
def served_run(tmp_path_factory) -> Path:
    return one_step_run(tmp_path_factory, "served_run")


@pytest.fixture(scope="session")
def server(served_run):
    pytest.importorskip("fastapi")
    process = ServerProcess(served_run, "--api-key", API_KEY, "--model-name", MODEL_NAME)
    yield process
    process.kill()
