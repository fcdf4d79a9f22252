"""Files that cannot be read as what they should be, a full disk, a run that diverged and Ctrl-C before training
starts: each ends `dsmoe` with one line on stderr naming the file, and a non-zero exit code, never a traceback."""

import errno
import math
import os
import signal
import subprocess

import pytest
import torch

from dsmoe.cli.main import main
from dsmoe.train import loop
from dsmoe.train.step import StepResult
from train.tiny import DSMOE, cli_env, one_step_run, train_args, wait_for


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return one_step_run(tmp_path_factory, "one_line_errors")


def one_line(capsys, code: int, argv: list[str]) -> str:
    """The one message line main() printed after any progress bars, having returned `code`."""
    assert main(argv) == code
    err = capsys.readouterr().err
    messages = [line for line in err.splitlines() if line.startswith("dsmoe ")]
    assert "Traceback" not in err and len(messages) == 1 and err.rstrip().endswith(messages[0]), err
    return messages[0]


def test_a_config_that_is_not_toml_is_named(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("model = [\n")
    err = one_line(capsys, 2, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert f"config file '{config}' is not valid TOML" in err
    assert not (tmp_path / "run").exists()


def test_a_config_path_that_is_a_directory_is_named(tmp_path, capsys):
    (tmp_path / "conf.toml").mkdir()
    err = one_line(capsys, 2, ["train", "--config", str(tmp_path / "conf.toml"), "--out", str(tmp_path / "run")])
    assert "is a directory, not a file" in err


def test_a_corrupt_tokenizer_of_a_run_is_named(trained_run, tmp_path, capsys):
    tokenizer = trained_run / "tokenizer.json"
    original = tokenizer.read_bytes()
    tokenizer.write_text("{not json")
    try:
        err = one_line(capsys, 2, ["generate", "--run", str(trained_run), "--prompt", "to be"])
    finally:
        tokenizer.write_bytes(original)
    assert f"tokenizer file '{tokenizer}' is not a valid tokenizer.json" in err


@pytest.mark.parametrize("content, message", [("{bad", "is not valid JSON"), ("[1, 2]", "not a list")])
def test_a_hugging_face_config_that_is_not_a_json_object_is_named(content, message, tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(content)
    err = one_line(capsys, 2, ["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run")])
    assert f"Hugging Face config '{tmp_path / 'hf' / 'config.json'}'" in err and message in err


def test_a_full_disk_while_saving_names_the_file_and_leaves_no_checkpoint(tmp_path, capsys, monkeypatch):
    def full_disk(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full_disk)
    err = one_line(capsys, 2, train_args(tmp_path, tmp_path / "run", train__steps=1))
    assert "No space left on device" in err and "trainer_state" in err
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []  # no partial checkpoint, no temporary


def test_a_run_that_keeps_diverging_exits_1_naming_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    def diverged(model, *args):
        return StepResult(math.nan, math.nan, {}, [])

    monkeypatch.setattr(loop, "accumulate_gradients", diverged)
    err = one_line(capsys, 1, train_args(tmp_path, tmp_path / "run", train__steps=5, train__max_nonfinite=2))
    assert "consecutive non-finite losses" in err


def test_a_collective_closed_by_another_ones_timeout_is_named(tmp_path, capsys, monkeypatch):
    """Gloo fails the collectives left in flight when one times out with an error that does not name gloo."""
    def closed(model, *args):
        raise RuntimeError("Application timeout caused pair closure")

    monkeypatch.setattr(loop, "accumulate_gradients", closed)
    err = one_line(capsys, 1, train_args(tmp_path, tmp_path / "run", train__steps=1))
    assert "a collective with the other ranks failed" in err and err.endswith("Application timeout caused pair closure")


def test_ctrl_c_before_training_starts_exits_130_in_one_line(tmp_path):
    out = tmp_path / "run"
    # the built-in Shakespeare with a fresh cache: its tokenizer takes seconds to train, before any step
    args = train_args(tmp_path, out, train__steps=5, data__path="shakespeare")
    process = subprocess.Popen([str(DSMOE), *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for(lambda: out.exists(), process, what="the run directory")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "dsmoe train: interrupted" and "Traceback" not in stderr
    assert not (out / "checkpoints").exists() or list((out / "checkpoints").iterdir()) == []


def test_a_reader_that_stops_early_is_not_an_error():
    """`dsmoe params ... | head -1`: the closed pipe ends dsmoe quietly with 141 (128 + SIGPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before dsmoe writes anything: its first write fails
    try:
        finished = subprocess.run([str(DSMOE), "params", "--preset", "paper-16b"], env=cli_env(), stdout=write_end,
                                  stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert finished.returncode == 141 and finished.stderr == b"", finished.stderr
