"""`dsmoe train` on a tiny corpus, then `dsmoe eval`, `dsmoe generate` and `dsmoe params` on what it wrote."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from dsmoe.cli.main import main
from train.tiny import corpus_text, read_steps, run_dsmoe, train_args

STEPS, SAVE_EVERY = 4, 2
AUX_LOSSES = {"seq_balance", "z_loss"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run trained by the console script in a subprocess (sequence-level balance loss and z-loss on)."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    out = tmp_path / "run"
    finished = run_dsmoe(train_args(tmp_path, out, train__steps=STEPS, train__save_every=SAVE_EVERY,
                                    train__eval_every=SAVE_EVERY, model__balance_scope="sequence",
                                    model__z_loss_coef=1e-3))
    assert finished.returncode == 0, finished.stderr
    assert f"finished: {STEPS}/{STEPS} steps" in finished.stdout
    return out


def test_run_directory_holds_checkpoints_config_metrics_and_tokenizer(run_dir):
    checkpoints = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    assert checkpoints == [f"step_{step:08d}" for step in range(SAVE_EVERY, STEPS + 1, SAVE_EVERY)]
    for checkpoint in checkpoints:
        files = {path.name for path in (run_dir / "checkpoints" / checkpoint).iterdir()}
        assert files == {"model.safetensors", "trainer_state.pt", "config.toml", "manifest.json"}
    assert {path.name for path in run_dir.iterdir()} == {"checkpoints", "config.toml", "metrics.jsonl",
                                                          "tokenizer.json"}


def test_metrics_log_every_step_with_losses_optimizer_and_expert_load(run_dir):
    steps = read_steps(run_dir / "metrics.jsonl")
    assert [record["step"] for record in steps] == list(range(1, STEPS + 1))
    for record in steps:
        assert {"loss", "lm_loss", *AUX_LOSSES, "lr", "grad_norm", "tokens_per_s"} <= record.keys()
        assert record["loss"] == pytest.approx(record["lm_loss"] + sum(record[name] for name in AUX_LOSSES))
        assert all(math.isfinite(record[key]) for key in ("loss", "grad_norm", "tokens_per_s"))
        assert list(record["experts"]) == ["1"]  # the tiny preset's first layer is dense
        layer = record["experts"]["1"]
        assert {"tokens_per_expert", "cv", "max_over_mean", "dropped"} <= layer.keys()
        assert sum(layer["tokens_per_expert"]) == 4 * 32 * 2  # batch x seq_len x top-k assignments
        assert layer["dropped"] == 0 and layer["max_over_mean"] >= 1 and layer["cv"] >= 0


def test_metrics_log_validation_during_and_after_training(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records if "val_loss" in record] == [SAVE_EVERY]
    assert [record["step"] for record in records if "final_val" in record] == [STEPS]


def test_checkpoint_weights_are_fp32_safetensors(run_dir):
    weights = load_file(run_dir / "checkpoints" / f"step_{STEPS:08d}" / "model.safetensors")
    assert "embed_tokens.weight" in weights and all(t.dtype == torch.float32 for t in weights.values())


def test_eval_prints_loss_perplexity_and_bits_per_byte(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir)]) == 0
    scored, out = capsys.readouterr().out.split("\n", 1)
    assert scored.startswith(f"scored the validation split of {run_dir.parent / 'corpus.txt'} (")
    assert out.startswith("all domains: loss ") and " ppl " in out and " bits/byte " in out
    loss = float(out.split("loss ")[1].split()[0])
    final_val = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["final_val"]
    assert loss == pytest.approx(final_val, abs=1e-4)  # the whole val split, as at the end of training


def test_eval_on_another_corpus_prints_one_line_per_domain(run_dir, tmp_path, capsys):
    for domain, lines in (("sonnets", slice(0, 150)), ("dialogue", slice(150, 300))):
        (tmp_path / f"{domain}.txt").write_text("\n".join(corpus_text().splitlines()[lines]) + "\n")
    assert main(["eval", "--run", str(run_dir), "--data", str(tmp_path), "--max-batches", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"scored 2 files: {tmp_path / 'dialogue.txt'}, {tmp_path / 'sonnets.txt'} (")
    assert lines[1].startswith("all domains: loss ")
    assert [line.split()[0] for line in lines[2:]] == ["dialogue", "sonnets"]  # files in sorted order


def test_generate_prints_the_prompt_and_a_completion(run_dir, capsys):
    assert main(["generate", "--run", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out.strip()) > len("ROMEO:")


def test_generate_from_a_prompts_file_in_batches_prints_what_each_prompt_alone_prints(run_dir, tmp_path, capsys):
    prompts = ["ROMEO:", "JULIET: O Romeo", "To be"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    greedy = ["--run", str(run_dir), "--max-new-tokens", "8", "--temperature", "0"]
    assert main(["generate", *greedy, "--prompts-file", str(tmp_path / "prompts.txt"), "--batch-size", "2"]) == 0
    batched = capsys.readouterr().out
    alone = []
    for prompt in prompts:  # one prompt alone is streamed, unpadded
        assert main(["generate", *greedy, "--prompt", prompt]) == 0
        alone.append(capsys.readouterr().out)
    assert batched == "".join(alone) and all(len(out) > len(prompt) + 2 for out, prompt in zip(alone, prompts))


def test_generate_compiled_prints_what_eager_generate_prints(run_dir, capsys):
    greedy = ["generate", "--run", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "8", "--temperature", "0"]
    assert main(greedy) == 0
    eager = capsys.readouterr().out
    assert main([*greedy, "--compile"]) == 0
    assert capsys.readouterr().out == eager


def test_params_prints_the_16b_table(capsys):
    assert main(["params", "--preset", "paper-16b"]) == 0
    out = capsys.readouterr().out
    assert "routed_experts" in out and "16.4 B" in out
