"""The OpenAI-compatible HTTP server over the engine (`dsmoe serve`): FastAPI routes on uvicorn, Prometheus
metrics. Its packages are the optional `serve` extra; importing this without them names the install command."""

from dsmoe.train.tensorboard import MissingDependencyError

INSTALL_COMMAND = "pip install 'dsmoe[serve]'"

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:
    raise MissingDependencyError(f"dsmoe serve needs the {error.name} package, which is not installed; install the "
                                 f"server's dependencies with: {INSTALL_COMMAND}") from error

from dsmoe.serve.http.app import ServedModel, build_app  # noqa: E402
from dsmoe.serve.http.server import serve  # noqa: E402

__all__ = ["INSTALL_COMMAND", "ServedModel", "build_app", "serve"]
