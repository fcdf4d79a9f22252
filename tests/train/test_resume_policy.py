"""What --resume may change is applied for real (the optimizer's groups, the schedule at the resumed step) and said
on stdout; what it may not change is refused; a new run never writes into a directory holding other files."""

import pytest

from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train.loop import train
from dsmoe.train.optim import lr_multiplier
from train.tiny import read_steps, run_config

FIRST_STEPS, STEPS = 3, 6


@pytest.fixture
def stopped_at_3(tmp_path):
    run = tmp_path / "run"
    train(run_config(tmp_path, train__steps=FIRST_STEPS, train__eval_every=0), run)
    return run


def resume_with(run, *overrides):
    saved = RunConfig.load(RunDir(run).config_path)
    config = RunConfig.from_dict(saved.to_dict(), list(overrides))
    train(config, run, resume=True)
    return config


def resumed_lrs(run) -> list[float]:
    return [record["lr"] for record in read_steps(RunDir(run).metrics_path)][FIRST_STEPS:]


def test_more_steps_continue_on_the_schedule_of_the_new_step_count(stopped_at_3, capsys):
    config = resume_with(stopped_at_3, f"train.steps={STEPS}")
    assert capsys.readouterr().out.startswith(f"--resume: applying train.steps: {FIRST_STEPS} -> {STEPS}\n"
                                              f"resuming from step {FIRST_STEPS} ")
    assert resumed_lrs(stopped_at_3) == [config.train.lr * lr_multiplier(step, config.train)
                                         for step in range(FIRST_STEPS, STEPS)]


def test_a_new_learning_rate_and_weight_decay_reach_the_optimizer(stopped_at_3, capsys):
    config = resume_with(stopped_at_3, f"train.steps={STEPS}", "train.lr=5e-4", "train.weight_decay=0.01")
    assert "train.lr: 0.001 -> 0.0005; train.weight_decay: 0.1 -> 0.01" in capsys.readouterr().out
    assert resumed_lrs(stopped_at_3) == [5e-4 * lr_multiplier(step, config.train) for step in range(FIRST_STEPS, STEPS)]
    decay, no_decay = ckpt.load_trainer_state(RunDir(stopped_at_3).latest_checkpoint())["optimizer"]["param_groups"]
    assert (decay["initial_lr"], decay["weight_decay"], no_decay["weight_decay"]) == (5e-4, 0.01, 0.0)
    assert RunConfig.load(RunDir(stopped_at_3).config_path).train.lr == 5e-4


def test_a_new_run_into_a_folder_of_other_files_is_refused_and_leaves_them_as_they_were(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.toml").write_text("[train]\nsteps = 1\n")
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match=f"--out '{folder}' is not empty \\(config.toml, tokenizer.json\\) and is "
                                         "not a run to resume"):
        train(run_config(tmp_path, train__steps=1), folder)
    assert {path.name: path.read_text() for path in folder.iterdir()} == {"config.toml": "[train]\nsteps = 1\n",
                                                                         "tokenizer.json": "{}"}


def test_a_resume_with_another_optimizer_is_refused_naming_the_field(stopped_at_3):
    with pytest.raises(ValueError, match="train.optimizer"):
        resume_with(stopped_at_3, f"train.steps={STEPS}", "train.optimizer=muon")
    assert [record["step"] for record in read_steps(RunDir(stopped_at_3).metrics_path)] == [1, 2, 3]


def test_a_muon_resume_with_the_routed_experts_moved_between_optimizers_is_refused_naming_the_field(tmp_path):
    run = tmp_path / "run"
    train(run_config(tmp_path, train__steps=FIRST_STEPS, train__eval_every=0, train__optimizer="muon"), run)
    with pytest.raises(ValueError, match="train.muon_experts: True -> False"):
        resume_with(run, f"train.steps={STEPS}", "train.muon_experts=false")
    assert [record["step"] for record in read_steps(RunDir(run).metrics_path)] == [1, 2, 3]


def test_a_muon_run_saved_before_muon_experts_existed_resumes_with_its_experts_on_adamw(tmp_path):
    run = tmp_path / "run"
    train(run_config(tmp_path, train__steps=FIRST_STEPS, train__eval_every=0, train__optimizer="muon",
                     train__muon_experts=False), run)
    config_path = RunDir(run).config_path
    config_path.write_text("".join(line for line in config_path.read_text().splitlines(keepends=True)
                                   if not line.startswith("muon_experts")))  # as such a run wrote it
    assert train(None, run, resume=True).step == FIRST_STEPS
    saved = RunConfig.load(config_path)
    assert saved.train.optimizer == "muon" and saved.train.muon_experts is False
    resume_with(run, f"train.steps={STEPS}")
    assert [record["step"] for record in read_steps(RunDir(run).metrics_path)] == list(range(1, STEPS + 1))
