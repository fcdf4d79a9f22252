"""`dsmoe config` prints every key of every section with its value, default and meaning, for the default config,
a preset, a run or a TOML file; --markdown writes docs/CONFIG.md."""

import dataclasses

import pytest

from dsmoe.cli.main import main
from dsmoe.config.reference import markdown, rows
from dsmoe.config.sections import SECTIONS


def printed(argv: list[str], capsys) -> str:
    assert main(["config", *argv]) == 0
    return capsys.readouterr().out


def key_lines(out: str) -> dict[str, str]:
    """{'section.key': its line}."""
    lines, section = {}, None
    for line in out.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("key "):
            lines[f"{section}.{line.split()[0]}"] = line
    return lines


def test_every_key_of_every_section_is_printed(capsys):
    lines = key_lines(printed([], capsys))
    assert list(lines) == [f"{name}.{field.name}" for name, cls in SECTIONS.items()
                           for field in dataclasses.fields(cls)]
    assert lines["train.lr"].split()[:4] == ["lr", "0.001", "0.001", "peak"]


@pytest.mark.parametrize("argv", [["--preset", "deepseek-v3"], ["--config", "CONFIG"], ["--run", "RUN"]])
def test_a_chosen_config_shows_its_values_marked_beside_the_defaults(argv, tmp_path, capsys):
    (tmp_path / "config.toml").write_text('[model]\npreset = "deepseek-v3"\n')
    argv = [str(tmp_path / "config.toml") if a == "CONFIG" else str(tmp_path) if a == "RUN" else a for a in argv]
    line = key_lines(printed(argv, capsys))["model.n_routed_experts"]
    assert line.split()[:4] == ["n_routed_experts", "256", "*", "16"]


def test_set_applies_first(capsys):
    assert key_lines(printed(["--set", "train.seed=5"], capsys))["train.seed"].split()[:4] == ["seed", "5", "*", "0"]


def test_markdown_is_the_reference_of_the_defaults(capsys):
    assert printed(["--markdown"], capsys) == markdown(rows())


@pytest.mark.parametrize("argv, message", [
    (["--markdown", "--set", "train.lr=1"], "--markdown writes the defaults and takes no --set"),
    (["--run", "nowhere"], "--run 'nowhere' is not a run directory (no config.toml)"),
    (["--set", "train.learning_rate=1"], "unknown key train.learning_rate; did you mean train.lr?"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(["config", *argv]) == 2
    assert capsys.readouterr().err == f"dsmoe config: error: {message}\n"
