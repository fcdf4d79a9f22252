"""`dsmoe convert`: a model trained by `dsmoe train` exports to a directory transformers loads with the same
logits, and imports back into a run directory `dsmoe generate` and `dsmoe eval` use; errors exit with code 2, and a
config no family can express is refused before any weights are read."""

from pathlib import Path

import pytest
import torch

from dsmoe.cli.main import main
from dsmoe.interop import run_dirs
from dsmoe.interop.families import exportable
from dsmoe.runs import RunConfig, RunDir, load_run
from dsmoe.train.loop import train
from interop.hf_models import load_hf, state_dicts_equal
from model.hf_reference import TOLERANCE, max_abs_diff
from train.tiny import run_config, write_corpus

REPO = Path(__file__).resolve().parents[2]
STEPS = 3
MLA_SIGMOID = dict(model__attention="mla", model__q_lora_rank=32, model__kv_lora_rank=32, model__qk_nope_head_dim=16,
                   model__qk_rope_head_dim=8, model__v_head_dim=16, model__rope_interleave=True,
                   model__router="sigmoid_topk", model__n_group=2, model__topk_group=1, train__steps=STEPS,
                   train__save_every=0, train__eval_every=0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny MLA model with DeepSeek-V3 routing trained for a few steps by the `dsmoe train` loop."""
    tmp_path = tmp_path_factory.mktemp("trained")
    assert train(run_config(tmp_path, **MLA_SIGMOID), tmp_path / "run").step == STEPS
    return tmp_path / "run"


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "hf"
    assert main(["convert", "--to-hf", str(trained_run), "--out", str(out)]) == 0
    return out


@torch.no_grad()
def test_a_trained_run_exports_to_transformers_with_the_same_logits(trained_run, exported):
    model = load_run(trained_run).model
    assert model.layers[1].ffn.router.expert_bias.abs().sum() > 0  # the aux-loss-free bias moved in training
    reference = load_hf(exported)
    assert type(reference).__name__ == "DeepseekV3ForCausalLM"
    ids = torch.randint(0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    assert max_abs_diff(model(ids).logits, reference(ids).logits) <= TOLERANCE
    assert (exported / "tokenizer.json").read_bytes() == (trained_run / "tokenizer.json").read_bytes()


def test_an_export_imports_back_into_a_run_that_generates_and_evaluates(trained_run, exported, tmp_path, capsys):
    run = tmp_path / "imported"
    assert main(["convert", "--from-hf", str(exported), "--out", str(run)]) == 0
    assert state_dicts_equal(load_run(run).model.state_dict(), load_run(trained_run).model.state_dict())
    capsys.readouterr()
    assert main(["generate", "--run", str(run), "--prompt", "ROMEO:", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    corpus = write_corpus(tmp_path / "eval")
    assert main(["eval", "--run", str(run), "--data", str(corpus), "--max-batches", "1"]) == 0
    assert "all domains:" in capsys.readouterr().out


def test_an_import_without_tokenizer_says_what_generate_needs(exported, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((exported / name).read_bytes())
    assert main(["convert", "--from-hf", str(bare), "--out", str(tmp_path / "run")]) == 0
    assert "has no tokenizer.json; `dsmoe eval` and `dsmoe generate` need one" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "step_00000000" / "model.safetensors").is_file()


@pytest.mark.parametrize("args, message", [
    (["--model-type", "deepseek_v2"],
     "deepseek_v2 cannot express this config: router='sigmoid_topk' (would load back as 'softmax_topk')"),
    (["--model-type", "mixtral"], "mixtral cannot express this config: attention='mla' (would load back as 'mha')"),
])
def test_an_export_the_family_cannot_express_fails_naming_the_field(trained_run, tmp_path, capsys, args, message):
    assert main(["convert", "--to-hf", str(trained_run), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_convert_never_writes_into_a_non_empty_directory(exported, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["convert", "--from-hf", str(exported), "--out", str(tmp_path)]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_run_of_the_default_config_is_refused_naming_every_family_before_its_weights_are_read(tmp_path, capsys,
                                                                                                 monkeypatch):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text(RunConfig.load(REPO / "configs" / "tiny.toml").to_toml())  # no checkpoint at all
    monkeypatch.setattr(run_dirs, "load_checkpoint_model", lambda *_, **__: pytest.fail("weights were read"))
    assert main(["convert", "--to-hf", str(run.path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face family can express this config" in err and "configs/tiny-v3.toml" in err
    assert all(f"\n  {family}: " in err for family in exportable())
    assert not (tmp_path / "out").exists()
