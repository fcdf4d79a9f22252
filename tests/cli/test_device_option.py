"""`--device` on every command that computes: a device this machine lacks, or a name that is no device, is one line
on stderr and exit 2 before anything is read or written; the CPU works end to end, with the expert kernel said on
stderr (stdout stays the command's output)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsmoe.cli.main import main
from dsmoe.interop.run_dirs import export_run
from dsmoe.train.loop import train
from train.tiny import one_thread, run_config

ABSENT = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"  # no such device here
COMMANDS = {  # each command's argv before --device, given the run, an HF export of it and a fresh output path
    "train": lambda run, hf, out: ["train", "--out", str(out)],
    "eval": lambda run, hf, out: ["eval", "--run", str(run)],
    "generate": lambda run, hf, out: ["generate", "--run", str(run), "--prompt", "to be"],
    "serve": lambda run, hf, out: ["serve", "--run", str(run)],
    "analyze": lambda run, hf, out: ["analyze", "--run", str(run), "--out", str(out)],
    "reproduce": lambda run, hf, out: ["reproduce", "table1", "--out", str(out)],
    "convert --to-hf": lambda run, hf, out: ["convert", "--to-hf", str(run), "--out", str(out)],
    "convert --from-hf": lambda run, hf, out: ["convert", "--from-hf", str(hf), "--out", str(out)],
    "demo": lambda run, hf, out: ["demo", "--out", str(out)],
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny run of one step (with a gated shared expert, so that it exports as qwen2_moe)."""
    tmp_path = tmp_path_factory.mktemp("device_option")
    with one_thread():
        train(run_config(tmp_path, train__steps=1, model__shared_expert_gate=True), tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def hf_dir(trained_run, tmp_path_factory) -> Path:
    return export_run(trained_run, tmp_path_factory.mktemp("device_option_hf") / "hf")


def files_of(*directories: Path) -> dict[Path, tuple[int, int]]:
    """Every file under the directories with its size and modification time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for directory in directories
            for path in directory.rglob("*")}


def one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    return captured.err.strip()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_device_not_here_is_one_line_naming_it_and_nothing_is_written(command, trained_run, hf_dir, tmp_path,
                                                                         capsys):
    before = files_of(trained_run.parent, hf_dir)
    out = tmp_path / "out"
    line = one_error_line(capsys, [*COMMANDS[command](trained_run, hf_dir, out), "--device", ABSENT])
    assert f"--device={ABSENT!r}: no such device here (available: cpu" in line
    assert not out.exists() and files_of(trained_run.parent, hf_dir) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_name_that_is_no_device_is_one_line_listing_the_choices(command, trained_run, hf_dir, tmp_path, capsys):
    out = tmp_path / "out"
    line = one_error_line(capsys, [*COMMANDS[command](trained_run, hf_dir, out), "--device", "tpu"])
    assert line.endswith("--device='tpu' is not a device: choose auto, cpu, cuda, cuda:N or mps")
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "demo", "reproduce"])
def test_device_and_set_train_device_that_differ_are_refused_naming_both(command, trained_run, hf_dir, tmp_path,
                                                                          capsys):
    argv = [*COMMANDS[command](trained_run, hf_dir, tmp_path / "out"), "--device", "cpu", "--set", "train.device=auto"]
    line = one_error_line(capsys, argv)
    assert "--device='cpu' and --set train.device='auto' differ" in line and not (tmp_path / "out").exists()


def kernel_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("expert kernel: ")]


def test_eval_on_the_cpu_scores_the_run_and_says_the_kernel_on_stderr(trained_run, capsys):
    assert main(["eval", "--run", str(trained_run), "--max-batches", "1", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "all domains: loss" in captured.out and "expert kernel" not in captured.out
    assert len(kernel_lines(captured.err)) == 1


@pytest.mark.parametrize("prompts", [["to be"], ["to be", "or not"]], ids=["streamed", "batched"])
def test_generate_on_the_cpu_completes_and_says_the_kernel_on_stderr(prompts, trained_run, capsys):
    argv = ["generate", "--run", str(trained_run), "--max-new-tokens", "4", "--device", "cpu"]
    assert main([*argv, *(arg for prompt in prompts for arg in ("--prompt", prompt))]) == 0
    captured = capsys.readouterr()
    assert all(prompt in captured.out for prompt in prompts) and "expert kernel" not in captured.out
    assert len(kernel_lines(captured.err)) == 1


def test_the_kernel_line_waits_for_the_input_checks(trained_run, capsys):
    argv = ["generate", "--run", str(trained_run), "--max-new-tokens", "1000", "--prompt", "a", "--device", "cpu"]
    assert "leaves no room for a prompt" in one_error_line(capsys, argv)


def test_analyze_on_the_cpu_writes_the_report_and_says_the_kernel_on_stderr(trained_run, tmp_path, capsys):
    argv = ["analyze", "--run", str(trained_run), "--out", str(tmp_path / "report"), "--max-tokens", "512",
            "--probe-batches", "1", "--device", "cpu"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (tmp_path / "report" / "report.html").is_file() and "expert kernel" not in captured.out
    assert len(kernel_lines(captured.err)) == 1
