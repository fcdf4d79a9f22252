"""Errors in OpenAI's schema, {"error": {"message", "type", "param", "code"}}, raised anywhere a request is handled
and answered by one handler."""

from __future__ import annotations

from fastapi.responses import JSONResponse

STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
                503: "service_unavailable"}


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(Exception):
    """An answer other than success: its HTTP status, message, the request field at fault (param) and a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> JSONResponse:
        kind = STATUS_TYPES.get(self.status, "server_error")
        return JSONResponse(error_body(self.message, kind, self.param, self.code), self.status, self.headers)
