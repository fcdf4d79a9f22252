"""Running the application on uvicorn: bind (a busy port is an OSError before the model serves), announce the URL
once ready, and on SIGTERM drain: new requests get 503, those in flight finish (up to drain_timeout_s), the engine
stops, and the process exits 0."""

from __future__ import annotations

import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from dsmoe.serve.http.app import MAX_BODY_BYTES, ServedModel, build_app

DRAIN_TIMEOUT_S = 30.0  # how long in-flight requests may take to finish after SIGTERM


class DrainingServer(uvicorn.Server):
    """uvicorn's server that refuses new requests as soon as it is asked to stop, treats SIGTERM as a normal end
    (uvicorn re-raises the signals it caught once shut down, which would kill the process), and says its URL
    when it listens."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, announcement: str):
        super().__init__(config)
        self.app, self.announcement = app, announcement

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.draining = True
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.announcement, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(served: ServedModel, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_body_bytes: int = MAX_BODY_BYTES, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Serve until SIGTERM or Ctrl-C (then KeyboardInterrupt), running served.engine meanwhile."""
    sock = bind(host, port)
    app = build_app(served, api_key, max_body_bytes)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=drain_timeout_s)
    server = DrainingServer(config, app, f"dsmoe serve: serving {served.name!r} at {url_of(sock)}/v1 "
                                         f"(SIGTERM or Ctrl-C stops it)")
    served.engine.start()
    try:
        server.run(sockets=[sock])
    finally:
        served.engine.stop()
