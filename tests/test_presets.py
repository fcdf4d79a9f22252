"""Presets: every one is valid, the paper ones reproduce the papers' sizes, the baselines are matched."""

import pytest

from dsmoe import ModelConfig, count_params, presets

BASELINES = ("dense", "hash", "switch", "gshard", "deepseekmoe")
MOE_BASELINES = ("hash", "switch", "gshard", "deepseekmoe")


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_is_a_valid_config(name):
    cfg = presets.get(name)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_preset_raises_listing_the_presets():
    with pytest.raises(ValueError, match="preset='paper-7b' is unknown") as info:
        presets.get("paper-7b")
    assert all(name in str(info.value) for name in presets.names())


def test_overrides_are_applied_and_validated():
    assert presets.get("tiny", n_layers=2).n_layers == 2
    with pytest.raises(ValueError, match="n_activated_experts=17 exceeds n_routed_experts=16"):
        presets.get("tiny", n_activated_experts=17)


# DeepSeekMoE (Dai et al. 2024): Table 1 (2B), Table 3 (16B), Table 6 (145B), in billions at one decimal
@pytest.mark.parametrize("name, total_b, activated_b", [("paper-2b", 2.0, 0.3), ("paper-16b", 16.4, 2.8),
                                                        ("paper-145b", 144.6, 22.2)])
def test_paper_preset_reproduces_the_papers_parameter_counts(name, total_b, activated_b):
    count = count_params(presets.get(name))
    assert (round(count.total / 1e9, 1), round(count.activated / 1e9, 1)) == (total_b, activated_b)


@pytest.mark.parametrize("name, shared, routed, top_k, first_moe_layer", [
    ("paper-2b", 1, 63, 7, 0), ("paper-16b", 2, 64, 6, 1), ("paper-145b", 4, 128, 12, 1)])
def test_paper_preset_has_the_papers_expert_layout(name, shared, routed, top_k, first_moe_layer):
    cfg = presets.get(name)
    assert (cfg.n_shared_experts, cfg.n_routed_experts, cfg.n_activated_experts) == (shared, routed, top_k)
    assert cfg.moe_layers == list(range(first_moe_layer, cfg.n_layers))


def _without_router(name: str, index: int) -> int:
    """Total (index 0) or activated (index 1) parameters, leaving out the router gate."""
    count = count_params(presets.get(name))
    return (count.total, count.activated)[index] - count.by_component["router"][index]


def test_baselines_have_equal_activated_parameters_apart_from_the_router_gate():
    # gate sizes scale with the expert count (0 for hash, 8*D for switch, 63*D for deepseekmoe), so only
    # the parameters outside the gate can match exactly, as in the paper's Table 1
    assert len({_without_router(name, 1) for name in BASELINES}) == 1


def test_moe_baselines_have_equal_total_parameters_apart_from_the_router_gate():
    assert len({_without_router(name, 0) for name in MOE_BASELINES}) == 1


def test_baseline_router_gates_are_under_two_percent_of_activated_parameters():
    for name in BASELINES:
        count = count_params(presets.get(name))
        assert count.by_component["router"][1] < 0.02 * count.activated, name
