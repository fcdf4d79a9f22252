"""Checkpoints do not depend on the device or dtype a run trained with: a run trained in bf16 on another device
(here its config.toml says cuda, as a GPU machine writes it) evaluates on this CPU and resumes here once told
where, from fp32 tensors. Its recorded dtype stays the one it trained with."""

import tomllib

import pytest
from safetensors import safe_open

from dsmoe.eval.run_eval import evaluate_run
from dsmoe.runs import RunConfig, RunDir
from dsmoe.train.loop import train
from train.tiny import run_config


@pytest.fixture
def gpu_trained_run(tmp_path):
    """A bf16 run whose run-level config.toml names train.device='cuda', as a run started on a GPU records it."""
    run = RunDir(tmp_path / "run")
    train(run_config(tmp_path, train__steps=2, train__dtype="bfloat16", train__device="cpu"), run.path)
    run.config_path.write_text(run.config_path.read_text().replace('device = "cpu"', 'device = "cuda"'))
    return run


def test_the_checkpoint_holds_fp32_tensors_and_the_run_records_its_dtype(gpu_trained_run):
    with safe_open(gpu_trained_run.latest_checkpoint().path / "model.safetensors", "pt") as weights:
        dtypes = {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}
    assert dtypes == {"F32"}
    assert tomllib.loads(gpu_trained_run.config_path.read_text())["train"]["dtype"] == "bfloat16"


def test_a_run_trained_elsewhere_evaluates_here(gpu_trained_run):
    assert evaluate_run(gpu_trained_run.path).result.loss > 0


def test_a_run_trained_elsewhere_resumes_here_once_told_where(gpu_trained_run, capsys):
    with pytest.raises(ValueError, match=r"train\.device='cuda': no such device here \(available: cpu"):
        train(None, gpu_trained_run.path, resume=True)
    saved = RunConfig.load(gpu_trained_run.config_path, ["train.device=\"cpu\"", "train.steps=4"])
    result = train(saved, gpu_trained_run.path, resume=True)
    assert result.step == 4 and "train.device: 'cuda' -> 'cpu'" in capsys.readouterr().out
