"""model.dispatch, the expert kernel's old name: configs, --set overrides and checkpoints saved with it still load,
read as model.expert_kernel with a one-line note on stderr per load; naming both is an error."""

import pytest

from dsmoe import ModelConfig
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.runs.checkpoint import save_checkpoint
from dsmoe.runs.layout import RunDir
from dsmoe.runs.open_run import load_checkpoint_model
from dsmoe.runs.run_config import RunConfig
from dsmoe.train.resume import saved_config

NOTE = "note: model.dispatch is now model.expert_kernel; read as expert_kernel='loop'\n"
SMALL_MODEL = dict(vocab_size=64, hidden_size=16, n_layers=2, n_heads=2, max_seq_len=16, intermediate_size=32,
                   moe_intermediate_size=8, n_routed_experts=4, n_activated_experts=2, n_shared_experts=1)


def old_run_toml() -> str:
    """A run's config.toml as it was written before the rename: `dispatch` in its [model] section."""
    toml = RunConfig.from_dict({"model": {**SMALL_MODEL, "expert_kernel": "loop"}}).to_toml()
    assert 'expert_kernel = "loop"' in toml
    return toml.replace('expert_kernel = "loop"', 'dispatch = "loop"')


def test_from_dict_reads_dispatch_as_expert_kernel_with_one_note(capsys):
    assert ModelConfig.from_dict({"dispatch": "loop"}).expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE


def test_giving_both_names_is_an_error_naming_both():
    with pytest.raises(ValueError, match="model.dispatch and model.expert_kernel are both given"):
        ModelConfig.from_dict({"dispatch": "loop", "expert_kernel": "grouped_mm"})


def test_replace_accepts_the_old_name(capsys):
    assert ModelConfig().replace(dispatch="loop").expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE


def test_model_config_load_reads_an_old_file(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text(old_run_toml())
    assert ModelConfig.load(path).expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE


def test_run_config_load_reads_an_old_model_section_on_top_of_a_preset(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[model]\npreset = "tiny"\ndispatch = "loop"\n')
    assert RunConfig.load(path).model.expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE


def test_a_set_override_may_use_the_old_name(capsys):
    config = RunConfig.load(None, ["model.dispatch=loop"])
    assert config.model.expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE


def test_an_old_checkpoint_loads_for_eval_and_resume(tmp_path, capsys):
    """A run directory and checkpoint whose config.toml names `dispatch` open for eval/generate and for resume."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    toml = old_run_toml()
    run.config_path.write_text(toml)
    model = DeepSeekMoEForCausalLM(ModelConfig(**SMALL_MODEL))
    save_checkpoint(run, 1, model, trainer_state={}, config_toml=toml, keep_last=1)
    config, loaded, _ = load_checkpoint_model(run.path)
    assert config.model.expert_kernel == "loop" and loaded.layers[1].ffn.experts.expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE  # once per load
    assert saved_config(run).model.expert_kernel == "loop"
    assert capsys.readouterr().err == NOTE
