"""A tiny run shared by the training, CLI, eval and inference tests: a small model, a few KB of text, tmp dirs only."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from dsmoe.config import ModelConfig
from dsmoe.data import resolve_corpus
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.runs import RunConfig
from dsmoe.runs.metrics_log import read_metrics

DSMOE = Path(sys.executable).parent / "dsmoe"  # the console script of the venv running the tests
CORPUS_CHARS = 12_000

MODEL = dict(hidden_size=64, n_layers=2, n_heads=2, vocab_size=512, max_seq_len=64, intermediate_size=128,
             moe_intermediate_size=32, n_routed_experts=4, n_activated_experts=2)
SETTINGS = {**{f"model.{key}": value for key, value in MODEL.items()},
            "data.seq_len": 32, "data.vocab_size": 300, "train.batch_size": 4, "train.warmup_steps": 2,
            "train.eval_batches": 2}


@lru_cache(maxsize=1)
def corpus_text() -> str:
    """The first lines of the built-in Shakespeare (about 12 KB), cut at a line end."""
    text = resolve_corpus("shakespeare").documents[0].train_text
    return text[:text.index("\n", CORPUS_CHARS) + 1]


def write_corpus(directory: Path, name: str = "corpus.txt") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(corpus_text())
    return path


def overrides(tmp_path: Path, **changes) -> list[str]:
    """--set assignments of the tiny run: its data lives in tmp_path/corpus.txt and its caches in tmp_path/cache."""
    values = {**SETTINGS, "data.path": str(write_corpus(tmp_path)), "data.cache_dir": str(tmp_path / "cache"),
              **{key.replace("__", "."): value for key, value in changes.items()}}
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def train_args(tmp_path: Path, out: Path, **changes) -> list[str]:
    """`dsmoe train` arguments (without the program name); changes are e.g. train__steps=4."""
    return ["train", "--out", str(out), *(arg for assignment in overrides(tmp_path, **changes)
                                          for arg in ("--set", assignment))]


def run_config(tmp_path: Path, **changes) -> RunConfig:
    return RunConfig.load(None, overrides(tmp_path, **changes))


def one_step_run(tmp_path_factory, name: str, relative_data: bool = False) -> Path:
    """A run of one step with one checkpoint (one torch thread), for module fixtures of tests that only read it.
    `relative_data`: started from the run's sibling directory a/ with the relative data.path "corpus.txt"."""
    from dsmoe.train.loop import train

    tmp_path = tmp_path_factory.mktemp(name)
    changes, started_in = {}, contextlib.nullcontext()
    if relative_data:
        write_corpus(tmp_path / "a")
        changes, started_in = {"data__path": "corpus.txt"}, contextlib.chdir(tmp_path / "a")
    with one_thread(), started_in:
        train(run_config(tmp_path, train__steps=1, **changes), tmp_path / "run")
    return tmp_path / "run"


def tiny_model(seed: int = 0, **changes) -> DeepSeekMoEForCausalLM:
    torch.manual_seed(seed)
    return DeepSeekMoEForCausalLM(ModelConfig(**{**MODEL, **changes}))


def run_dsmoe(args: list[str], threads: int | None = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    """The console script in a subprocess (see cli_env)."""
    return subprocess.run([str(DSMOE), *args], capture_output=True, text=True, timeout=timeout, env=cli_env(threads))


def cli_env(threads: int | None = 1) -> dict[str, str]:
    """The test's environment without a progress bar, and with `threads` torch threads (None: torch's default)."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    return {**env, "TQDM_DISABLE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}


@contextlib.contextmanager
def one_thread():
    """Torch on one thread: tiny matrices gain nothing from threads, and on a busy 2-core machine a second
    OpenMP thread makes a training step about 100x slower; the thread count does not change what a test checks."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)  # autouse in every directory whose conftest imports it
def one_torch_thread():
    with one_thread():
        yield


def read_steps(metrics_path: Path) -> list[dict]:
    """The per-step training records of a metrics.jsonl (not the validation records); none before it exists."""
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    return [record for record in records if "loss" in record]


def wait_for(condition, process: subprocess.Popen, timeout: float = 60, what: str = "the condition") -> None:
    """Poll `condition()` until it holds; fail if the process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process exited (code {process.returncode}) before {what}: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
