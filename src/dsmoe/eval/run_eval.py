"""Evaluate a run directory's latest checkpoint on its validation split or on the whole text of other files."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from dsmoe.data import prepare_data, token_byte_lengths, tokenize_whole_files
from dsmoe.data.batches import count_windows
from dsmoe.eval.evaluate import EvalResult, evaluate_domains
from dsmoe.runs import RunDir, load_run
from dsmoe.runtime.devices import resolve_device

LISTED_FILES = 5  # a summary names this many files, then counts the rest


@dataclass(frozen=True)
class RunEvaluation:
    """The scores, and what was scored: which text, its UTF-8 bytes and its tokens."""

    result: EvalResult
    scored: str


def evaluate_run(run_dir: str | Path, data_path: str | None = None, max_batches: int | None = None,
                 device: str | torch.device = "auto") -> RunEvaluation:
    """Loss, perplexity and bits per byte (overall and per domain) with the run's own tokenizer.

    Without `data_path`: the run's validation split, of the corpus the run recorded (dsmoe.data.identity: its
    absolute path, refused if its text changed). With it: every file of `data_path` (a file, directory, glob or
    built-in corpus), all of its text, one domain per file.
    On `device` (a torch.device or a --device name), in the dtype LoadedRun.dtype gives there: the run's
    train.dtype (bf16 autocast) on a GPU with native bf16, else float32. The expert kernel used is said on stderr
    once the run and the data are read.
    """
    device = resolve_device(device, "device")
    loaded, run = load_run(run_dir, device=device), RunDir(run_dir)
    data_config, seq_len = loaded.config.data, loaded.config.data.seq_len
    if data_path is None:
        split = prepare_data(data_config, run.tokenizer_path, loaded.config.model.vocab_size, reuse_tokenizer=True).val
        what = f"the validation split of {data_config.path}"
    else:
        whole = tokenize_whole_files(data_path, loaded.tokenizer, data_config.cache_dir)
        split, what = whole.split, files_summary(list(whole.files.values()))
        for label, file in whole.files.items():
            count_windows(len(split.domain_tokens(label)), seq_len, f"--data file {str(file)!r}")
    print(loaded.expert_kernel(), file=sys.stderr)
    with loaded.autocast():
        result = evaluate_domains(loaded.model, {domain: split.domain_tokens(domain) for domain in split.domains},
                                  seq_len, loaded.config.train.batch_size, token_byte_lengths(loaded.tokenizer),
                                  max_batches)
    return RunEvaluation(result, f"{what} ({split.n_bytes:,} bytes, {len(split.tokens):,} tokens)")


def files_summary(files: list[Path]) -> str:
    """'2 files: a.txt, b.txt', naming at most LISTED_FILES of them."""
    names = ", ".join(str(file) for file in files[:LISTED_FILES])
    more = f" and {len(files) - LISTED_FILES} more" if len(files) > LISTED_FILES else ""
    return f"{len(files)} file{'s' if len(files) > 1 else ''}: {names}{more}"
