"""Nothing of the user's is deleted: each command that writes a directory refuses one holding a file it did not
write, naming the file, before any work, and leaves it as it was; a rerun into the command's own earlier output
keeps the user's file there too. (eval and generate write nothing; params and config only print.)"""

import shutil

import pytest

from dsmoe.cli.main import main
from dsmoe.reproduce.suite_dir import check_suite_dir
from dsmoe.runs import RunDir
from train.tiny import one_step_run, train_args, write_corpus

NOTES = "my notes"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return one_step_run(tmp_path_factory, "user_files")


def users_directory(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text(NOTES)
    return path


def refusal(capsys, argv: list[str]) -> str:
    """The one line main() printed, having refused `argv` with the bad-input code."""
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


def assert_untouched(directory) -> None:
    assert [path.name for path in directory.iterdir()] == ["notes.txt"]
    assert (directory / "notes.txt").read_text() == NOTES


def test_train_refuses_a_directory_of_the_users(tmp_path, capsys):
    mine = users_directory(tmp_path / "mine")
    line = refusal(capsys, train_args(tmp_path, mine, train__steps=2))
    assert f"--out '{mine}' is not empty (notes.txt)" in line
    assert_untouched(mine)


def test_a_resumed_run_keeps_the_users_files_in_it_and_among_its_checkpoints(trained_run, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    users_directory(run.path)
    look_alike = users_directory(run.checkpoint(0).path)  # named like a checkpoint, without a manifest
    assert main(["train", "--out", str(run.path), "--resume", "--set", "train.steps=2",
                 "--set", "train.keep_last=1"]) == 0
    assert (run.path / "notes.txt").read_text() == NOTES
    assert_untouched(look_alike)
    assert [checkpoint.step for checkpoint in run.checkpoints()] == [0, 2]  # step 1, dsmoe's own, was deleted


def test_demo_refuses_a_directory_of_the_users_before_timing_a_step(tmp_path, capsys):
    mine = users_directory(tmp_path / "mine")
    line = refusal(capsys, ["demo", "--out", str(mine), "--minutes", "0.05"])
    assert f"--out '{mine}' is not empty (notes.txt)" in line
    assert_untouched(mine)


def test_convert_refuses_a_directory_of_the_users_both_ways_before_reading_the_model(trained_run, tmp_path, capsys):
    mine = users_directory(tmp_path / "mine")
    for direction in (["--to-hf", str(trained_run)], ["--from-hf", str(tmp_path / "not-read")]):
        line = refusal(capsys, ["convert", *direction, "--out", str(mine)])
        assert f"output '{mine}' exists and is not an empty directory (it holds notes.txt)" in line
        assert_untouched(mine)


def test_analyze_refuses_a_directory_of_the_users(trained_run, tmp_path, capsys):
    mine = users_directory(tmp_path / "mine")
    line = refusal(capsys, ["analyze", "--run", str(trained_run), "--out", str(mine), "--no-probes"])
    assert f"--out '{mine}' holds notes.txt and is not an earlier analysis" in line
    assert_untouched(mine)


def test_reproduce_refuses_a_directory_of_the_users(tmp_path, capsys):
    mine = users_directory(tmp_path / "mine")
    corpus = write_corpus(tmp_path / "data")
    line = refusal(capsys, ["reproduce", "table1", "--steps", "1", "--data", str(corpus), "--out", str(mine)])
    assert f"--out '{mine}' holds notes.txt, which this suite did not write" in line
    assert_untouched(mine)


def test_a_suites_own_directory_is_taken_and_a_users_file_in_it_named(tmp_path):
    """What a suite leaves (its runs, one moved aside, the results, the report and its figures, a killed write's
    temporary) is its own; a file of the user's beside them or among the figures, which a rerun replaces, is not."""
    suite = tmp_path / "suite"
    for path in ("dense/seed0/config.toml", "dense/seed0.incomplete-20261207-101010/config.toml", "results.json",
                 "report.md", "report_figures/curves.png", ".results.json.k1ll3d.tmp"):
        (suite / path).parent.mkdir(parents=True, exist_ok=True)
        (suite / path).write_text("")
    check_suite_dir(suite, ["dense", "gshard"])
    for mine in ("notes.txt", "report_figures/mine.png", "dense/notes.txt"):
        (suite / mine).write_text(NOTES)
        with pytest.raises(ValueError, match=f"holds {mine}, which this suite did not write"):
            check_suite_dir(suite, ["dense", "gshard"])
        (suite / mine).unlink()


def test_eval_and_generate_write_nothing_in_the_run(trained_run, capsys):
    def files():
        return {path: path.stat().st_mtime_ns for path in trained_run.rglob("*")}

    before = files()
    assert main(["eval", "--run", str(trained_run), "--max-batches", "1"]) == 0
    assert main(["generate", "--run", str(trained_run), "--prompt", "To be", "--max-new-tokens", "2"]) == 0
    assert files() == before
