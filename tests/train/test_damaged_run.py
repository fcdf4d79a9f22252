"""A damaged run directory still trains, evaluates and generates from what is intact, and says what it skipped:
a torn metrics line and the temporaries of killed writes are cleared on the next start; a corrupt or truncated
checkpoint is named on stderr and the newest intact one used; none intact, or weights that evaluate to a
non-finite loss, are errors (exit code 2)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dsmoe.cli.main import main
from dsmoe.runs import RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train.loop import train
from train.tiny import one_thread, read_steps, run_config

STEPS = 3
COMMANDS = {"eval": ["eval", "--max-batches", "1"], "generate": ["generate", "--prompt", "a", "--max-new-tokens", "2"],
            "resume": ["train", "--resume"]}


def command(name: str, run) -> list[str]:
    program, *options = COMMANDS[name]
    return [program, "--out" if name == "resume" else "--run", str(run), *options]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Checkpoints of steps 1, 2 and 3."""
    tmp_path = tmp_path_factory.mktemp("damaged")
    with one_thread():
        train(run_config(tmp_path, train__steps=STEPS, train__save_every=1, train__keep_last=STEPS), tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def run(trained, tmp_path) -> RunDir:
    """A copy of the trained run, to damage."""
    return RunDir(shutil.copytree(trained, tmp_path / "run"))


def flip_a_byte(path) -> str:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "sha256 mismatch (expected "


def truncate(path) -> str:
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size // 2])
    return f"{size // 2} bytes, expected {size} (truncated?)"


DAMAGES = {"flipped_byte": flip_a_byte, "truncated": truncate}


def test_a_torn_metrics_line_is_cut_away_on_resume(run):
    with run.metrics_path.open("a") as metrics:
        metrics.write('{"step": 4, "loss": 5.')
    assert main(command("resume", run.path)) == 0
    assert run.metrics_path.read_text().endswith("}\n")
    assert [record["step"] for record in read_steps(run.metrics_path)] == list(range(1, STEPS + 1))


def test_the_temporaries_of_killed_writes_are_removed_on_the_next_start(run):
    leftovers = [run.checkpoints_dir / ".step_00000004.k1ll3d.tmp", run.path / ".metrics.jsonl.k1ll3d.tmp"]
    leftovers[0].mkdir()
    (leftovers[0] / "model.safetensors").write_bytes(b"\0" * 4096)
    leftovers[1].write_text('{"step": 1}\n')
    assert main(command("resume", run.path)) == 0
    assert [path for path in leftovers if path.exists()] == []


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", COMMANDS)
def test_a_damaged_latest_checkpoint_is_named_and_the_previous_one_used(name, damage, run, capsys):
    weights = run.checkpoint(STEPS).weights_path
    problem = DAMAGES[damage](weights)
    assert main(command(name, run.path)) == 0
    err = capsys.readouterr().err
    assert f"checkpoint step_{STEPS:08d} is corrupt ({weights}: {problem}" in err, err
    assert f"); using step_{STEPS - 1:08d}\n" in err, err
    if name == "resume":  # trained again from step 2, which writes checkpoint 3 afresh; the corrupt one is kept
        ckpt.verify_checkpoint(run.checkpoint(STEPS))
        aside = run.checkpoints_dir / f"corrupt_step_{STEPS:08d}"
        assert f"moved corrupt checkpoint step_{STEPS:08d} aside to {aside}" in err
        assert (aside / weights.name).is_file() and run.latest_checkpoint() == run.checkpoint(STEPS)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_run_with_no_intact_checkpoint_is_an_error_naming_each(name, run, capsys):
    for checkpoint in run.checkpoints():
        truncate(checkpoint.weights_path)
    assert main(command(name, run.path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dsmoe {COMMANDS[name][0]}: error: run directory {str(run.path)!r} has no intact "
                          f"checkpoint: checkpoint step_{STEPS:08d} is corrupt ("), err
    assert "checkpoint step_00000001 is corrupt (" in err and "Traceback" not in err


def test_checkpoints_from_before_manifests_load_as_before(run, capsys):
    for checkpoint in run.checkpoints():
        checkpoint.manifest_path.unlink()
    assert main(command("eval", run.path)) == 0
    assert "corrupt" not in capsys.readouterr().err
    assert main(command("resume", run.path)) == 0


def test_weights_that_evaluate_to_a_non_finite_loss_are_an_error(run, capsys):
    latest = run.checkpoint(STEPS)
    save_file({name: torch.full_like(tensor, torch.nan) for name, tensor in load_file(latest.weights_path).items()},
              latest.weights_path)
    ckpt.write_manifest(latest)  # the checksum vouches for the NaNs: the evaluation itself must refuse them
    assert main(command("eval", run.path)) == 2
    assert "dsmoe eval: error: evaluation loss is nan: the model gives non-finite logits" in capsys.readouterr().err
