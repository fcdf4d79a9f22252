"""`dsmoe serve` as a real process on 127.0.0.1 and a free port, and curl for talking to it raw."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from train.tiny import cli_env, wait_for

START_TIMEOUT_S = 120  # importing torch and loading the run on a busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """The server on `run`, started with `options` and waited for until /health answers."""

    def __init__(self, run: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "dsmoe", "serve", "--run", str(run), "--port",
                                         str(self.port), "--device", "cpu", *options],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        wait_for(self.healthy, self.process, timeout=START_TIMEOUT_S, what="the server's /health")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM; its exit code, stdout and stderr."""
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stdout, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def curl(url: str, body: str | None = None, headers: tuple[str, ...] = ()) -> tuple[int, dict[str, str], dict | str]:
    """(status, response headers with lower-case names, the JSON body or the text) of a GET, or a POST of `body`."""
    command = ["curl", "-s", "-i", "--max-time", "60", url, *(arg for header in headers for arg in ("-H", header))]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]  # the body on stdin
    raw = subprocess.run(command, input=None if body is None else body.encode(), capture_output=True, timeout=90,
                         check=True).stdout.decode()  # bytes keep the \r\n that split headers from body
    head, _, text = raw.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    fields = (line.partition(":") for line in header_lines)
    response_headers = {name.lower(): value.strip() for name, _, value in fields}
    status = int(status_line.split()[1])
    try:
        return status, response_headers, json.loads(text)
    except json.JSONDecodeError:
        return status, response_headers, text
