"""dsmoe eval scores the run's own recorded corpus (from any directory, refused once edited), or with --data all the
text of every file given, and says what it scored."""

import contextlib
import json
import re

import pytest

from dsmoe.cli.main import main
from dsmoe.data import load_tokenizer
from dsmoe.eval.run_eval import evaluate_run
from dsmoe.runs import RunDir
from dsmoe.train.loop import train
from train.tiny import corpus_text, one_step_run, run_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return one_step_run(tmp_path_factory, "run_eval", relative_data=True)


def test_without_data_the_runs_recorded_corpus_is_scored_from_any_directory(run_dir, tmp_path):
    (tmp_path / "corpus.txt").write_text(corpus_text().upper())  # what "corpus.txt" names here
    with contextlib.chdir(tmp_path):
        evaluation = evaluate_run(run_dir)
    final_val = json.loads(RunDir(run_dir).metrics_path.read_text().splitlines()[-1])["final_val"]
    assert evaluation.result.loss == pytest.approx(final_val, abs=1e-4)
    assert evaluation.scored.startswith(f"the validation split of {run_dir.parent / 'a' / 'corpus.txt'} (")


def test_without_data_an_edited_corpus_is_refused_naming_it(tmp_path):
    train(run_config(tmp_path, train__steps=1), tmp_path / "run")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text() + "an edit\n")
    with pytest.raises(ValueError, match=re.escape(f"the corpus '{corpus}' changed since the run started")):
        evaluate_run(tmp_path / "run")


def test_data_scores_all_the_text_of_the_file_and_says_so(run_dir, tmp_path, capsys):
    text = "\n".join(corpus_text().splitlines()[:120]) + "\n"
    (tmp_path / "plays.txt").write_text(text)
    n_tokens = len(load_tokenizer(run_dir / "tokenizer.json").encode(text).ids)
    assert main(["eval", "--run", str(run_dir), "--data", str(tmp_path / "plays.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"scored 1 file: {tmp_path / 'plays.txt'} ({len(text.encode()):,} bytes, {n_tokens:,} tokens)"
    assert lines[1].startswith("all domains: loss ") and lines[1].endswith(f"({n_tokens - 1:,} tokens predicted)")


def test_a_held_out_val_file_alone_is_scored(run_dir, tmp_path):
    (tmp_path / "held.val.txt").write_text(corpus_text()[:3000])
    evaluation = evaluate_run(run_dir, str(tmp_path / "held.val.txt"))
    assert evaluation.scored.startswith(f"1 file: {tmp_path / 'held.val.txt'} (3,000 bytes, ")
