"""ModelConfig: MoE layer placement, save/load round trips, unknown keys and replace()."""

import re

import pytest

from dsmoe import ModelConfig


def test_first_k_dense_replace_makes_the_first_layers_dense():
    assert ModelConfig(n_layers=6, first_k_dense_replace=2).moe_layers == [2, 3, 4, 5]


def test_moe_layer_freq_keeps_every_freq_th_layer_after_the_dense_ones():
    assert ModelConfig(n_layers=7, first_k_dense_replace=1, moe_layer_freq=2).moe_layers == [2, 4, 6]


def test_moe_layer_indices_override_the_placement_rule():
    cfg = ModelConfig(n_layers=6, first_k_dense_replace=2, moe_layer_freq=3, moe_layer_indices=[4, 0])
    assert cfg.moe_layers == [0, 4]


def test_zero_routed_experts_means_no_moe_layers():
    assert ModelConfig(n_layers=4, n_routed_experts=0).moe_layers == []


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize("indices", [[0, 2], None], ids=["indices", "none"])
def test_save_then_load_gives_an_equal_config(tmp_path, suffix, indices):
    cfg = ModelConfig(n_layers=3, n_kv_heads=2, moe_layer_indices=indices, router="sigmoid_topk",
                      balance_scope="sequence", norm_eps=1e-5, routed_scaling_factor=2.5)
    path = tmp_path / f"model{suffix}"
    cfg.save(path)
    assert ModelConfig.load(path) == cfg


def test_load_reads_fields_under_a_model_table(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nn_layers = 2\nn_routed_experts = 8\nn_activated_experts = 2\n\n[train]\nlr = 0.001\n")
    cfg = ModelConfig.load(path)
    assert (cfg.n_layers, cfg.n_routed_experts, cfg.n_activated_experts) == (2, 8, 2)


def test_unknown_key_suggests_the_closest_field():
    with pytest.raises(ValueError, match=re.escape("'n_routed_expert'; did you mean 'n_routed_experts'?")):
        ModelConfig.from_dict({"n_routed_expert": 8})


def test_unknown_key_in_a_file_suggests_the_closest_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("hiden_size = 128\n")
    with pytest.raises(ValueError, match="did you mean 'hidden_size'"):
        ModelConfig.load(path)


@pytest.mark.parametrize("name", ["model.yaml", "model"])
def test_save_rejects_unknown_file_suffix(tmp_path, name):
    with pytest.raises(ValueError, match="must end in .toml or .json"):
        ModelConfig().save(tmp_path / name)


def test_replace_validates_the_new_values():
    with pytest.raises(ValueError, match=re.escape("n_activated_experts=17 exceeds n_routed_experts=16")):
        ModelConfig().replace(n_activated_experts=17)


def test_replace_changes_only_the_given_field_and_leaves_the_original():
    cfg = ModelConfig()
    changed = cfg.replace(n_layers=7)
    assert (changed.n_layers, cfg.n_layers) == (7, 4)
    assert {**changed.to_dict(), "n_layers": 4} == cfg.to_dict()


@pytest.mark.parametrize("changes", [dict(n_heads=8), dict(hidden_size=512)], ids=["n_heads", "hidden_size"])
def test_replace_equals_building_with_the_changed_field(changes):
    # head_dim and n_kv_heads default from hidden_size/n_heads; replace must re-derive them, not freeze them
    assert ModelConfig().replace(**changes) == ModelConfig(**changes)


@pytest.mark.parametrize("router, renormalised", [("sigmoid_topk", True), ("softmax_topk", False), ("hash", False)])
def test_norm_topk_prob_left_unset_is_the_routers_paper_default(router, renormalised):
    assert ModelConfig(router=router).norm_topk_prob is renormalised


@pytest.mark.parametrize("explicit", [False, True])
def test_an_explicit_norm_topk_prob_is_kept_for_every_router(explicit):
    for router in ("sigmoid_topk", "softmax_topk"):
        cfg = ModelConfig(router=router, norm_topk_prob=explicit)
        assert cfg.norm_topk_prob is explicit and cfg.to_dict()["norm_topk_prob"] is explicit


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_an_unset_norm_topk_prob_stays_unset_through_save_and_replace(tmp_path, suffix):
    cfg = ModelConfig(router="sigmoid_topk")
    cfg.save(tmp_path / f"model{suffix}")
    loaded = ModelConfig.load(tmp_path / f"model{suffix}")
    assert loaded.to_dict()["norm_topk_prob"] is None and loaded.norm_topk_prob is True
    assert cfg.replace(router="softmax_topk").norm_topk_prob is False  # re-derived for the new router, not frozen
