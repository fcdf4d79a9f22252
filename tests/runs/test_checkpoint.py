"""Checkpoints round-trip exactly, keep the last N (deleting only what dsmoe wrote), survive a failed write, and load
without unpickling code."""

import hashlib
import json
import re

import pytest
import torch

from dsmoe.runs import RunDir
from dsmoe.parallel.ranks import unique_state
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train.loop import train
from train.tiny import run_config, tiny_model

STATE = {"step": 1, "rng": torch.get_rng_state()}


def save(run_dir, step, model, keep_last=3):
    return ckpt.save_checkpoint(RunDir(run_dir), step, model, {**STATE, "step": step}, "[model]\n", keep_last)


@pytest.mark.parametrize("as_state_dict", [False, True], ids=["model", "state dict"])
def test_round_trip_gives_identical_outputs_and_keeps_tied_embeddings_tied(tmp_path, as_state_dict):
    """From a model, or from its state dict with the tied tensor once (what the training loop saves)."""
    model = tiny_model(seed=0, tie_word_embeddings=True)
    fresh = tiny_model(seed=1, tie_word_embeddings=True)
    ckpt.load_weights(save(tmp_path, 1, unique_state(model) if as_state_dict else model), fresh)
    assert fresh.lm_head.weight is fresh.embed_tokens.weight
    inputs = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(fresh.eval()(inputs).logits, model.eval()(inputs).logits)


def test_only_the_newest_keep_last_checkpoints_remain(tmp_path):
    model = tiny_model()
    for step in range(1, 6):
        save(tmp_path, step, model, keep_last=2)
    assert [checkpoint.path.name for checkpoint in RunDir(tmp_path).checkpoints()] == ["step_00000004", "step_00000005"]


def test_keep_last_deletes_only_checkpoints_that_hold_nothing_but_what_dsmoe_wrote(tmp_path, capsys):
    """A user's directory of a checkpoint's name (no manifest), a checkpoint holding a user's file, and a copy of
    a checkpoint under another name all stay."""
    model, run = tiny_model(), RunDir(tmp_path)
    mine = run.checkpoint(1).path
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    annotated = save(tmp_path, 2, model, keep_last=5).path
    (annotated / "README").write_text("the good one")
    copy = run.checkpoints_dir / "step_00000003.bak"
    save(tmp_path, 3, model, keep_last=5).path.rename(copy)
    for step in range(3, 6):
        save(tmp_path, step, model, keep_last=1)
    assert [checkpoint.path.name for checkpoint in run.checkpoints()] == ["step_00000001", "step_00000002",
                                                                         "step_00000005"]
    assert (mine / "notes.txt").read_text() == "mine" and (annotated / "README").read_text() == "the good one"
    assert copy.is_dir()
    err = capsys.readouterr().err
    assert f"kept {mine} beyond train.keep_last: it holds notes.txt, which dsmoe did not write" in err
    assert f"kept {annotated} beyond train.keep_last: it holds README" in err


def test_saving_a_step_again_refuses_a_checkpoint_holding_a_users_file(tmp_path):
    model = tiny_model()
    checkpoint = save(tmp_path, 1, model).path
    (checkpoint / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"step_00000001 holds notes\.txt, which dsmoe did not write"):
        save(tmp_path, 1, model)
    assert (checkpoint / "notes.txt").read_text() == "mine"


def test_the_manifest_holds_the_size_and_sha256_of_every_other_file(tmp_path):
    checkpoint = save(tmp_path, 1, tiny_model())
    files = json.loads(checkpoint.manifest_path.read_text())["files"]
    assert sorted(files) == sorted(path.name for path in checkpoint.path.iterdir() if path != checkpoint.manifest_path)
    for name, record in files.items():
        data = (checkpoint.path / name).read_bytes()
        assert record == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_damaged_manifest_makes_its_checkpoint_corrupt(tmp_path):
    checkpoint = save(tmp_path, 1, tiny_model())
    checkpoint.manifest_path.write_text(checkpoint.manifest_path.read_text()[:40])
    with pytest.raises(ckpt.CorruptCheckpointError, match=f"^{checkpoint.manifest_path}: not a valid manifest "):
        ckpt.verify_checkpoint(checkpoint)


WRITERS = {"save_model": (ckpt, "save_model"), "save_file": (ckpt, "save_file"),  # weights of a model, a state dict
           "torch.save": (ckpt.torch, "save")}  # trainer state


@pytest.mark.parametrize("failing", WRITERS)
def test_a_failed_write_leaves_the_previous_checkpoint_intact(failing, tmp_path, monkeypatch):
    model = tiny_model()
    previous = save(tmp_path, 1, model)
    before = {path.name: path.read_bytes() for path in previous.path.iterdir()}

    def full_disk(obj, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(*WRITERS[failing], full_disk)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(OSError, match="No space left on device"):
        save(tmp_path, 2, unique_state(model) if failing == "save_file" else model)
    monkeypatch.undo()

    assert [path.name for path in RunDir(tmp_path).checkpoints_dir.iterdir()] == ["step_00000001"]  # no temp dir
    assert {path.name: path.read_bytes() for path in previous.path.iterdir()} == before
    fresh = tiny_model(seed=1)
    ckpt.load_weights(RunDir(tmp_path).latest_checkpoint(), fresh)
    assert torch.equal(fresh.lm_head.weight, tiny_model().lm_head.weight)
    assert ckpt.load_trainer_state(previous)["step"] == 1


def test_weights_of_another_architecture_are_refused_naming_the_tensors(tmp_path):
    checkpoint = save(tmp_path, 1, tiny_model())
    with pytest.raises(ValueError, match=re.escape("missing ['layers.2.attn.k_proj.weight'")):
        ckpt.load_weights(checkpoint, tiny_model(n_layers=3))
    with pytest.raises(ValueError, match=re.escape("unexpected ['layers.1.attn.k_proj.weight'")):
        ckpt.load_weights(checkpoint, tiny_model(n_layers=1))
    with pytest.raises(RuntimeError, match="size mismatch for embed_tokens.weight"):
        ckpt.load_weights(checkpoint, tiny_model(hidden_size=96))


def test_the_trainer_state_of_a_real_run_loads_with_weights_only(tmp_path):
    train(run_config(tmp_path, train__steps=2), tmp_path / "run")
    state = torch.load(RunDir(tmp_path / "run").latest_checkpoint().trainer_state_path, weights_only=True)
    assert state["step"] == 2 and state["scheduler"]["last_epoch"] == 2
    assert set(state) == {"step", "optimizer", "scheduler", "progress", "rng"}
    assert all(param_state["step"] == 2 for param_state in state["optimizer"]["state"].values())
