"""A resume reads the corpus and the tokenizer the run started with, or refuses naming what changed; the run's
tokenizer.json is never rewritten, not even by a resume that fails."""

import contextlib
import dataclasses
import re
import shutil

import pytest
from safetensors.torch import save_model

from dsmoe.data import DataConfig, save_tokenizer, train_tokenizer
from dsmoe.runs import RunConfig, RunDir
from dsmoe.train.loop import train
from train.tiny import corpus_text, one_step_run, run_config, tiny_model, write_corpus


@pytest.fixture(scope="module")
def started_in_a(tmp_path_factory):
    """The directory of a one-step run started from its a/ with the relative data.path "corpus.txt"."""
    return one_step_run(tmp_path_factory, "identity", relative_data=True).parent


@pytest.fixture
def run(started_in_a, tmp_path):
    """A copy of the run, for a test to resume (its corpus stays where the run recorded it)."""
    copy = tmp_path / "run"
    shutil.copytree(started_in_a / "run", copy)
    return RunDir(copy)


def files_of(run: RunDir) -> dict:
    return {path: path.read_bytes() for path in run.path.rglob("*") if path.is_file()}


def test_the_run_records_the_absolute_data_path_and_the_corpus_hash(started_in_a):
    data = RunConfig.load(RunDir(started_in_a / "run").config_path).data
    assert data.path == str(started_in_a / "a" / "corpus.txt") and len(data.sha256) == 64


def test_a_resume_from_another_directory_reads_the_recorded_corpus_and_keeps_the_tokenizer(run, started_in_a,
                                                                                           tmp_path):
    other = tmp_path / "b"
    (other / "corpus.txt").parent.mkdir()
    (other / "corpus.txt").write_text(corpus_text().upper())  # the same relative path names other text here
    tokenizer = run.tokenizer_path.read_bytes()
    with contextlib.chdir(other):
        result = train(None, run.path, resume=True)
    assert result.step == 1 and run.tokenizer_path.read_bytes() == tokenizer
    assert RunConfig.load(run.config_path).data.path == str(started_in_a / "a" / "corpus.txt")


def test_a_resume_given_a_relative_data_path_that_resolves_elsewhere_is_refused(run, started_in_a, tmp_path):
    saved = RunConfig.load(run.config_path)
    (tmp_path / "b").mkdir()
    before = files_of(run)
    with contextlib.chdir(tmp_path / "b"), pytest.raises(ValueError) as error:
        train(RunConfig.from_dict(saved.to_dict(), ["data.path='corpus.txt'"]), run.path, resume=True)
    assert str(error.value) == (f"--resume: data.path 'corpus.txt' resolves to '{tmp_path / 'b' / 'corpus.txt'}', "
                                f"the run used '{started_in_a / 'a' / 'corpus.txt'}'")
    assert files_of(run) == before


def test_a_resume_after_the_corpus_was_edited_is_refused_naming_it_and_writes_nothing(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    train(run_config(tmp_path, train__steps=1), run.path)
    sha256 = RunConfig.load(run.config_path).data.sha256
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text() + "one line more\n")
    before = files_of(run)
    with pytest.raises(ValueError, match=re.escape(f"the corpus '{corpus}' changed since the run started (sha256 "
                                                   f"{sha256} -> ")):
        saved = RunConfig.load(run.config_path)
        train(dataclasses.replace(saved, train=dataclasses.replace(saved.train, steps=2)), run.path, resume=True)
    assert files_of(run) == before
    assert "applying" not in capsys.readouterr().out  # a refused resume does not say it applies train.steps


def test_a_resume_without_the_runs_tokenizer_is_refused(run):
    run.tokenizer_path.unlink()
    with pytest.raises(ValueError, match="has no tokenizer.json; its checkpoints hold that tokenizer's token ids"):
        train(None, run.path, resume=True)
    assert not run.tokenizer_path.exists()


def test_a_failed_resume_of_an_imported_run_leaves_its_tokenizer_as_it_was(tmp_path):
    """The layout dsmoe convert --from-hf writes: weights only, the model's own tokenizer, default data settings."""
    run = RunDir(tmp_path / "imported")
    model = tiny_model()
    config = RunConfig(model=model.config, data=DataConfig(path=str(write_corpus(tmp_path)), seq_len=32,
                                                           cache_dir=str(tmp_path / "cache")))
    checkpoint = run.checkpoint(0)
    checkpoint.path.mkdir(parents=True)
    save_model(model, str(checkpoint.weights_path))
    for path in (run.config_path, checkpoint.config_path):
        path.write_text(config.to_toml())
    save_tokenizer(train_tokenizer(["a tokenizer from elsewhere\n" * 50], vocab_size=300), run.tokenizer_path)
    before = files_of(run)
    with pytest.raises(ValueError, match="has a trainer state \\(an imported run holds weights only\\)"):
        train(None, run.path, resume=True)
    assert files_of(run) == before
