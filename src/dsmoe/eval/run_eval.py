"""Evaluate a run directory's latest checkpoint on its validation split or on another corpus."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dsmoe.data import prepare_data, token_byte_lengths
from dsmoe.eval.evaluate import EvalResult, evaluate_domains
from dsmoe.runs import RunDir, load_run


def evaluate_run(run_dir: str | Path, data_path: str | None = None, max_batches: int | None = None) -> EvalResult:
    """Loss, perplexity and bits per byte (overall and per domain) with the run's own tokenizer."""
    loaded, tokenizer_path = load_run(run_dir), RunDir(run_dir).tokenizer_path
    # the run's tokenizer, "reused" at its own path: prepare_data then leaves the run directory as it is
    data_config = dataclasses.replace(loaded.config.data, tokenizer=str(tokenizer_path),
                                      path=data_path or loaded.config.data.path)
    data = prepare_data(data_config, tokenizer_path, loaded.config.model.vocab_size)
    val_tokens = {domain: data.val.domain_tokens(domain) for domain in data.val.domains}
    return evaluate_domains(loaded.model, val_tokens, data_config.seq_len, loaded.config.train.batch_size,
                            token_byte_lengths(data.tokenizer), max_batches)
