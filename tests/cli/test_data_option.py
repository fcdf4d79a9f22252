"""`dsmoe train --data PATH` trains on PATH whatever characters its name holds: quotes, a backslash, `=`, a
space, non-ASCII letters (the path is passed on as a value, never written out as TOML and parsed back)."""

from dsmoe.cli.main import main
from dsmoe.runs import RunConfig, RunDir
from train.tiny import train_args, write_corpus


def test_a_data_path_with_quotes_backslash_and_unicode_is_trained_on(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "odd", "it's \"a\" \\ corpus=1 ü.txt")
    out = tmp_path / "run"
    assert main(train_args(tmp_path, out, train__steps=1) + ["--data", str(corpus)]) == 0, capsys.readouterr().err
    assert RunConfig.load(RunDir(out).config_path).data.path == str(corpus)
