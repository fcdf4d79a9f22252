"""Every user error ends `dsmoe` with exit code 2 and one "dsmoe CMD: error: ..." line naming the field or path."""

import pytest

from dsmoe.cli.main import main
from dsmoe.runs import RunConfig, RunDir
from train.tiny import one_step_run, run_dsmoe, train_args


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return one_step_run(tmp_path_factory, "cli_errors")


def assert_cli_error(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dsmoe {argv[0]}: error: ") and message in err, err
    assert "Traceback" not in err


def write(path, content: bytes):
    path.write_bytes(content)
    return path


DATA_ERRORS = {
    "missing": (lambda tmp: tmp / "nope.txt", "nope.txt' does not exist"),
    "empty": (lambda tmp: write(tmp / "empty.txt", b"\n  \n"), "empty.txt' is empty"),
    "binary": (lambda tmp: write(tmp / "blob.bin", b"\x7fELF\x00\x01\x02" * 100), "blob.bin' is binary"),
    "too_short": (lambda tmp: write(tmp / "short.txt", b"to be\n" * 20), "needed for one sequence"),
}


@pytest.mark.parametrize("make_data, message", DATA_ERRORS.values(), ids=DATA_ERRORS.keys())
def test_bad_corpus_is_named(make_data, message, tmp_path, capsys):
    data = make_data(tmp_path)
    assert_cli_error(train_args(tmp_path, tmp_path / "run") + ["--data", str(data)], message, capsys)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("assignment, message", [
    ("train.lrr=1", "unknown key train.lrr; did you mean train.lr?"),
    ("train.schedule=x", "train.schedule='x' must be one of"),
    ("train.steps=0", "train.steps=0 must be an integer >= 1"),
    ("train.dtype=fp16", "train.dtype='fp16' must be one of"),
    ("data.vocab_size=600", "vocab_size=600 exceeds the model's vocab_size=512"),
    ("train.compile=no", "train.compile='no' must be true or false"),
    ("train.steps=true", "train.steps=True must be an integer >= 1"),
    ("data.val_fraction=nan", "data.val_fraction=nan must be a number in (0, 1)"),
    ("model.n_routed_experts=-1", "model.n_routed_experts=-1 must be an integer >= 0"),
])
def test_bad_setting_is_named(assignment, message, tmp_path, capsys):
    assert_cli_error(train_args(tmp_path, tmp_path / "run") + ["--set", assignment], message, capsys)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("argv, message", [
    (["params", "--preset", "tiny", "--batch", "0"], "--batch=0 must be an integer >= 1"),
    (["params", "--preset", "tiny", "--seq-len", "-1"], "--seq-len=-1 must be an integer >= 1"),
    (["demo", "--minutes", "0"], "--minutes=0.0 must be a number > 0"),
    (["demo", "--minutes", "-2"], "--minutes=-2.0 must be a number > 0"),
    (["demo", "--minutes", "nan"], "--minutes=nan must be a number > 0"),
    (["demo", "--minutes", "inf"], "--minutes=inf must be a number > 0"),
    (["demo", "--compare-dense", "--set", "model.n_routed_experts=0"], "no MoE layers (n_routed_experts=0)"),
    (["demo", "--compare-dense", "--set", "model.intermediate_size=640"],
     "an MoE layer activates a FFN width of 512 (shared 128 + n_activated_experts=3 x moe_intermediate_size=128), "
     "but intermediate_size=640"),
])
def test_bad_size_names_the_flag(argv, message, tmp_path, capsys):
    assert_cli_error([*argv, *(["--out", str(tmp_path / "run")] if argv[0] == "demo" else [])], message, capsys)
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoints(tmp_path, capsys):
    assert_cli_error(train_args(tmp_path, tmp_path / "run") + ["--resume"], "has no checkpoint to resume from", capsys)


def test_new_run_into_a_run_directory(trained_run, tmp_path, capsys):
    assert_cli_error(train_args(tmp_path, trained_run), "already has checkpoints; pass --resume", capsys)


def test_resume_with_a_config_of_another_width(trained_run, tmp_path, capsys):
    saved = RunConfig.load(RunDir(trained_run).latest_checkpoint().config_path)
    config = tmp_path / "wider.toml"
    config.write_text(RunConfig.from_dict(saved.to_dict(), ["model.hidden_size=96"]).to_toml())
    assert_cli_error(["train", "--config", str(config), "--out", str(trained_run), "--resume"],
                     "model.hidden_size: 64 -> 96", capsys)


@pytest.mark.parametrize("argv", [["generate", "--prompt", "x"], ["eval"]], ids=["generate", "eval"])
def test_non_run_directory(argv, tmp_path, capsys):
    message = f"--run {str(tmp_path)!r} is not a run directory (no config.toml)"
    assert_cli_error([*argv, "--run", str(tmp_path)], message, capsys)


@pytest.mark.parametrize("option, message", [
    (["--temperature", "-1"], "temperature=-1.0 must be >= 0"),
    (["--top-p", "1.5"], "top_p=1.5 must be in (0, 1]"),
    (["--max-new-tokens", "64"], "max_new_tokens=64 leaves no room for a prompt within max_seq_len=64"),
    (["--batch-size", "0"], "--batch-size 0 must be >= 1"),
    (["--speculative", "--compile"], "--compile applies to plain decoding; --speculative runs eagerly"),
])
def test_bad_sampling_option(option, message, trained_run, capsys):
    assert main(["generate", "--run", str(trained_run), "--prompt", "x", *option]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dsmoe generate: error: ") and message in err  # nothing printed before it


def test_console_script_reports_a_missing_corpus_without_a_traceback(tmp_path):
    finished = run_dsmoe(train_args(tmp_path, tmp_path / "run") + ["--data", str(tmp_path / "nope.txt")])
    assert finished.returncode == 2
    assert finished.stderr.startswith("dsmoe train: error: corpus path") and "Traceback" not in finished.stderr
