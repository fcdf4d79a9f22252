"""The FastAPI application: OpenAI's completion routes over one engine, /health and /metrics, behind the guard
every request passes (draining, body size, API key)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from tokenizers import Tokenizer

from dsmoe.serve.engine import Engine
from dsmoe.serve.http.completion_body import parse_completion_body
from dsmoe.serve.http.completions import CompletionRun
from dsmoe.serve.http.errors import ApiError
from dsmoe.serve.http.guard import Guard, body_too_large
from dsmoe.serve.http.live_page import LIVE_PAGE
from dsmoe.serve.http.metrics import ServerMetrics

MAX_BODY_BYTES = 1_000_000  # a larger request body is refused (413)
CLIENT_CLOSED_REQUEST = 499  # what the metrics count for a client that left before its answer (nginx's status)


@dataclass
class ServedModel:
    """What the server serves: the engine running the model, its tokenizer, and the name clients ask for."""

    name: str
    engine: Engine
    tokenizer: Tokenizer


def build_app(served: ServedModel, api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The application; the caller starts and stops served.engine. Setting app.state.draining makes every request
    a 503 (a server shutting down)."""
    app = FastAPI(title="dsmoe", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.draining = False
    metrics = ServerMetrics(served.engine)

    app.add_middleware(Guard, state=app.state, metrics=metrics, api_key=api_key, max_body_bytes=max_body_bytes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return ApiError(error.status_code, f"{request.method} {request.url.path}: {error.detail}").response()

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        return ApiError(500, f"{type(error).__name__}: {error}").response()

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parse_completion_body(await json_body(request, max_body_bytes))
        check_model(body.model, served.name)
        run = CompletionRun(body, served.engine, served.tokenizer, served.name, metrics)
        if body.stream:
            return StreamingResponse(run.sse(), media_type="text/event-stream")
        answer = await run.answer(request.is_disconnected)
        return JSONResponse(answer) if answer is not None else Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        raise ApiError(400, f"model {served.name!r} is a base language model with no chat template, so it serves no "
                            f"chat completions; send a text prompt to /v1/completions", param="messages",
                       code="no_chat_template")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [model_card(served.name)]}

    @app.get("/v1/models/{name}")
    async def model(name: str) -> dict:
        check_model(name, served.name)
        return model_card(served.name)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/")
    async def live_page() -> HTMLResponse:
        return HTMLResponse(LIVE_PAGE)

    @app.get("/stats")
    async def stats() -> dict:
        """What the live page shows, as JSON."""
        load = served.engine.load.snapshot()
        return {"model": served.name, "queue_depth": served.engine.n_waiting,
                "running_batch_size": served.engine.n_running, "generated_tokens": metrics.generated_total,
                "expert_load": {"moe_layers": load.moe_layers, "tokens_per_expert": load.tokens_per_expert,
                                "forwards": load.forwards}}

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


async def json_body(request: Request, max_body_bytes: int) -> dict:
    raw = await request.body()
    if len(raw) > max_body_bytes:  # a chunked body names no length up front
        raise body_too_large(len(raw), max_body_bytes)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from error
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, not {type(body).__name__}", code="invalid_json")
    return body


def check_model(name: str | None, served_name: str) -> None:
    """A request may leave the model out; naming another one is a 404."""
    if name is not None and name != served_name:
        raise ApiError(404, f"model {name!r} does not exist; this server serves {served_name!r}", param="model",
                       code="model_not_found")


def model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "dsmoe"}
