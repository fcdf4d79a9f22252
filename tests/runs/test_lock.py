"""The run lock: held, it refuses a second holder naming the first; a killed holder's file does not block; a user's
file of its name is never overwritten."""

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from dsmoe.runs import RunDir
from dsmoe.runs.lock import lock_run

# Takes the lock of the run directory argv[1], says so, and sleeps until killed.
HOLD = """
import sys, time
from dsmoe.runs import RunDir
from dsmoe.runs.lock import lock_run
with lock_run(RunDir(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    run = RunDir(tmp_path / "run")
    with lock_run(run):
        with pytest.raises(ValueError) as refused, lock_run(run):
            pytest.fail("the second holder got the lock")
    assert str(refused.value).startswith(f"run directory {str(run.path)!r} is in use by pid {os.getpid()} on host "
                                         f"{socket.gethostname()} since ")
    assert str(refused.value).endswith("; wait for it or choose another --out")


def test_a_released_lock_leaves_no_file_and_no_empty_directory_it_made(tmp_path):
    run = RunDir(tmp_path / "run")
    with lock_run(run):
        assert run.lock_path.is_file()
    assert not run.path.exists()
    run.path.mkdir()
    with lock_run(run):
        (run.path / "kept.txt").write_text("written under the lock")
    assert [path.name for path in run.path.iterdir()] == ["kept.txt"]


def test_a_file_where_the_run_directory_belongs_is_refused_naming_it(tmp_path):
    (tmp_path / "run").write_text("a file of yours")
    with pytest.raises(ValueError, match=f"^--out {re.escape(repr(str(tmp_path / 'run')))} is a file, not a "), \
            lock_run(RunDir(tmp_path / "run")):
        pytest.fail("locked a file")
    assert (tmp_path / "run").read_text() == "a file of yours"


def test_the_lock_file_of_a_sigkilled_holder_does_not_block_the_next_run(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        named = f"is in use by pid {holder.pid} on host .* since .* " + re.escape(f"(-c {run.path})")
        with pytest.raises(ValueError, match=named), lock_run(run):
            pytest.fail("got the lock of a live holder")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert run.lock_path.is_file(), "the killed holder's lock file is gone; this test checks nothing"
    with lock_run(run):
        assert str(os.getpid()) in run.lock_path.read_text()


def test_a_users_file_named_like_the_lock_is_refused_and_kept(tmp_path):
    run = RunDir(tmp_path)
    run.lock_path.write_text("my notes on this training")
    with pytest.raises(ValueError, match="train.lock is not a dsmoe lock file, and training would overwrite it"), \
            lock_run(run):
        pytest.fail("the lock was taken")
    assert run.lock_path.read_text() == "my notes on this training"
