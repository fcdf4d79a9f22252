"""Presets: every one is valid, the paper ones reproduce the papers' sizes, the baselines are matched."""

import math
from pathlib import Path

import pytest

import dsmoe
from dsmoe import ModelConfig, count_params, presets
from dsmoe.runs import RunConfig

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


# DeepSeekMoE (Dai et al. 2024): Table 1 (2B), Table 3 (16B), in billions at one decimal; 145B: Sec. 7.1 says about
# 144.6B / 22.2B, but leaves out its dense first layer's width: with the standard FFN width (dsmoe.presets) it is
# 144.48B / 22.06B, 0.14B (one 11264-wide SwiGLU) short of both
@pytest.mark.parametrize("name, total_b, activated_b", [("paper-2b", 2.0, 0.3), ("paper-16b", 16.4, 2.8),
                                                        ("paper-145b", 144.5, 22.1)])
def test_paper_preset_reproduces_the_papers_parameter_counts(name, total_b, activated_b):
    count = count_params(presets.get(name))
    assert (round(count.total / 1e9, 1), round(count.activated / 1e9, 1)) == (total_b, activated_b)


def _billions(count: int, digits: int) -> set[float]:
    """The figures a paper may print for `count`: rounded or truncated to `digits` decimals of a billion."""
    scaled = count / 1e9 * 10**digits
    return {round(scaled) / 10**digits, math.floor(scaled) / 10**digits}


# DeepSeek-V2 Table 1 / Sec. 3.1.2 (236B / 21B), Appendix B (V2-Lite 15.7B / 2.4B: ours is 2.45B, printed cut to
# one decimal), DeepSeek-V3 Sec. 4.2 (671B / 37B; README_WEIGHTS.md: 36.6B activated): the main-model counts
@pytest.mark.parametrize("name, total_b, activated_b, digits", [
    ("deepseek-v2", 236, 21, 0), ("deepseek-v2-lite", 15.7, 2.4, 1), ("deepseek-v3", 671, 37, 0),
    ("deepseek-v3", 671.0, 36.6, 1)])
def test_deepseek_preset_reproduces_the_papers_main_model_counts(name, total_b, activated_b, digits):
    total, activated = count_params(presets.get(name)).main_model
    assert total_b in _billions(total, digits) and activated_b in _billions(activated, digits)


def test_deepseek_v3_mtp_module_is_the_reported_one():
    # README_WEIGHTS.md: 11.5B unique parameters, 1.5B activated with the shared 0.9B output head; both figures
    # leave out eh_proj (2 x 7168^2 = 0.10B), which dsmoe counts in the module
    cfg = presets.get("deepseek-v3")
    count = count_params(cfg)
    eh_proj, head = 2 * cfg.hidden_size**2, cfg.vocab_size * cfg.hidden_size
    mtp_total, mtp_activated = count.by_component["mtp"]
    assert round((mtp_total - eh_proj) / 1e9, 1) == 11.5 and round((mtp_activated - eh_proj + head) / 1e9, 1) == 1.5


@pytest.mark.parametrize("name, attention_ranks, routing", [
    ("deepseek-v2", (1536, 512, 128, 64, 128), ("softmax_topk", 160, 6, 8, 3, False, 16.0)),
    ("deepseek-v2-lite", (None, 512, 128, 64, 128), ("softmax_topk", 64, 6, 1, 1, False, 1.0)),
    ("deepseek-v3", (1536, 512, 128, 64, 128), ("sigmoid_topk", 256, 8, 8, 4, True, 2.5))])
def test_deepseek_preset_has_the_released_attention_and_routing(name, attention_ranks, routing):
    cfg = presets.get(name)
    assert (cfg.q_lora_rank, cfg.kv_lora_rank, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim) == \
        attention_ranks
    assert (cfg.router, cfg.n_routed_experts, cfg.n_activated_experts, cfg.n_group, cfg.topk_group,
            cfg.norm_topk_prob, cfg.routed_scaling_factor) == routing


def test_tiny_v3_has_the_v3_mechanisms():
    cfg = presets.get("tiny-v3")
    assert (cfg.attention, cfg.router, cfg.norm_topk_prob, cfg.balance_scope) == ("mla", "sigmoid_topk", True,
                                                                                  "sequence")
    assert cfg.n_group > cfg.topk_group > 0 and cfg.n_mtp_modules == 1 and count_params(cfg).total < 10_000_000


def test_tiny_v4_has_the_v4_moe_mechanisms_with_tiny_v3s_attention():
    cfg = presets.get("tiny-v4")
    assert (cfg.router, cfg.norm_topk_prob, cfg.n_group, cfg.swiglu_limit) == ("sqrtsoftplus_topk", True, 1, 10.0)
    assert cfg.moe_layers == list(range(cfg.n_layers)) and cfg.hash_layers == [0]
    v3 = presets.get("tiny-v3")
    assert [getattr(cfg, name) for name in ("attention", "q_lora_rank", "kv_lora_rank", "n_mtp_modules")] == \
        [getattr(v3, name) for name in ("attention", "q_lora_rank", "kv_lora_rank", "n_mtp_modules")]
    assert count_params(cfg).total < 10_000_000


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


@pytest.mark.parametrize("name", ["tiny-v3", "tiny-v4"])
def test_tiny_v3_and_v4_run_configs_ship_in_the_package_and_build_the_preset(name):
    shipped = Path(dsmoe.__file__).parent / "configs" / f"{name}.toml"
    assert (Path(__file__).parents[1] / "configs" / f"{name}.toml").resolve() == shipped.resolve()
    assert RunConfig.load(shipped).model == presets.get(name)
