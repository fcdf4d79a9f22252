"""What every request passes before a route sees it: a server shutting down refuses it (503), a body over the limit
is refused unread (413), a missing or wrong API key is refused (401); and each answer is counted by endpoint and
status. Plain ASGI, so routes still see their client leave (request.is_disconnected)."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers, State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsmoe.serve.http.errors import ApiError
from dsmoe.serve.http.metrics import ServerMetrics

OPEN_PATHS = {"/health", "/"}  # answered without the API key (the live page holds no data; its /stats needs it)
ENDPOINTS = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/stats", "/"}


def body_too_large(size: int, max_body_bytes: int) -> ApiError:
    return ApiError(413, f"the request body of {size} bytes exceeds the limit of {max_body_bytes} bytes",
                    code="body_too_large")


class Guard:
    """ASGI middleware around the routes; `state.draining` set means the server is shutting down."""

    def __init__(self, app: ASGIApp, state: State, metrics: ServerMetrics, api_key: str | None, max_body_bytes: int):
        self.app, self.state, self.metrics = app, state, metrics
        self.api_key, self.max_body_bytes = api_key, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        statuses: list[int] = []

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        refusal = self.refusal(scope["path"], Headers(scope=scope))
        try:
            await (refusal.response() if refusal is not None else self.app)(scope, receive, send_counted)
        finally:  # an exception here is answered 500 outside
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint, str(statuses[0] if statuses else 500)).inc()

    def refusal(self, path: str, headers: Headers) -> ApiError | None:
        """Why the request is refused before it is read, or None."""
        if self.state.draining:
            return ApiError(503, "the server is shutting down and takes no new requests", code="shutting_down")
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return body_too_large(int(length), self.max_body_bytes)
        if self.api_key is not None and path not in OPEN_PATHS:
            given = headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, f"Bearer {self.api_key}".encode()):
                return ApiError(401, "a valid API key is needed: send the header 'Authorization: Bearer KEY' with "
                                     "the key the server was started with (--api-key)", code="invalid_api_key")
        return None
