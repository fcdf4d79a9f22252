"""A tiny run trained on four small domains with two checkpoints, and its analysis, shared by the analysis tests."""

from __future__ import annotations

from pathlib import Path

from dsmoe.analysis.analyze import Analysis, analyze_run
from dsmoe.data import resolve_corpus
from tests.train.tiny import one_thread, run_config

DOMAIN_CHARS = 6_000


def write_domains(directory: Path) -> Path:
    """The first DOMAIN_CHARS of each built-in domain's train and val text, as DOMAIN.train.txt / DOMAIN.val.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    for document in resolve_corpus("domains").documents:
        (directory / f"{document.domain}.train.txt").write_text(document.train_text[:DOMAIN_CHARS])
        (directory / f"{document.domain}.val.txt").write_text(document.val_text[:DOMAIN_CHARS])
    return directory


def train_domains_run(tmp_path: Path, steps: int = 6, **changes) -> Path:
    from dsmoe.train.loop import train

    config = run_config(tmp_path, data__path=str(write_domains(tmp_path / "domains")), train__steps=steps,
                        train__save_every=steps // 2, train__eval_every=steps, **changes)
    with one_thread():
        train(config, tmp_path / "run")
    return tmp_path / "run"


def analysed(tmp_path_factory) -> Analysis:
    run = train_domains_run(tmp_path_factory.mktemp("analysed"), model__n_layers=3)  # MoE layers 1 and 2
    with one_thread():
        return analyze_run(run, probe_batches=2)
