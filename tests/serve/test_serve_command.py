"""`dsmoe serve`'s own failures are one line on stderr and exit 2, before it serves anything."""

import socket

import pytest

from dsmoe.cli.main import main

pytest.importorskip("fastapi")


def error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("expert kernel: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_batch_of_no_slots_is_refused(served_run, capsys):
    assert "max_batch=0 must be >= 1" in error_line(capsys, ["serve", "--run", str(served_run), "--max-batch", "0"])


def test_a_busy_port_is_one_line_naming_it(served_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(capsys, ["serve", "--run", str(served_run), "--port", str(port), "--device", "cpu"])
    assert f"cannot listen on 127.0.0.1:{port}" in line
