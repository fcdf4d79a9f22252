"""The Figure 4 and shared-expert probes: what they measure, that they refuse what they cannot do, and that they
leave the model as it was."""

import numpy as np
import pytest
import torch

from dsmoe.analysis.probes import (disabling_steps, expert_disabling_curve, experts_disabled, most_routed_experts,
                                   paired_change, shared_expert_probe, shared_experts_removed, window_losses)
from dsmoe.eval.evaluate import evaluate_domains
from tests.train.tiny import tiny_model

SEQ_LEN = 16
DOMAINS = {name: np.random.default_rng(seed).integers(0, 512, 4 * SEQ_LEN + 1) for seed, name in enumerate("ab")}


def losses(model) -> np.ndarray:
    """What the probes are given: the loss of each window, here every window of both domains (2 batches of 2)."""
    return window_losses(model, DOMAINS, SEQ_LEN, batch_size=2, max_batches=2)


def pooled_loss(model) -> float:
    return float(losses(model).mean())


def test_the_mean_window_loss_is_the_pooled_loss_dsmoe_eval_gives_on_the_same_windows():
    model = tiny_model().eval()
    assert len(losses(model)) == 8  # 4 windows per domain
    pooled = evaluate_domains(model, DOMAINS, SEQ_LEN, batch_size=2, token_bytes=np.ones(512, dtype=np.int64),
                              max_batches=2).loss
    assert pooled_loss(model) == pytest.approx(pooled, rel=1e-6)


def test_a_paired_change_has_the_standard_error_of_the_per_window_changes():
    change, error = paired_change(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 3.5, 4.2]))
    differences = np.array([0.5, 0.0, 0.5, 0.2])
    assert change == pytest.approx(differences.mean())
    assert error == pytest.approx(differences.std(ddof=1) / 2.0)  # sqrt(4 windows)
    assert paired_change(np.ones(3), np.ones(3) + 0.1) == pytest.approx((0.1, 0.0))  # the same shift everywhere: sure
    assert np.isnan(paired_change(np.ones(1), np.zeros(1))[1])  # one window: no estimate


def moe_layers(model) -> list[int]:
    return [index for index, block in enumerate(model.layers) if block.is_moe]


def uniform_loads(model) -> dict[int, np.ndarray]:
    return {layer: np.arange(model.config.n_routed_experts)[::-1].copy() for layer in moe_layers(model)}


def test_disabling_zero_experts_is_exactly_the_plain_loss_and_disabling_changes_it():
    model = tiny_model(n_routed_experts=6).eval()
    curve = expert_disabling_curve(model, uniform_loads(model), losses, ks=range(3))
    assert [point["k"] for point in curve] == [0, 1, 2]
    assert curve[0]["loss"] == pooled_loss(model)
    assert curve[1]["loss"] != curve[0]["loss"] and curve[2]["loss"] != curve[1]["loss"]
    assert curve[2]["disabled"] == {str(layer): [0, 1] for layer in moe_layers(model)}  # highest load first
    assert "stopped" not in curve[-1]


def test_each_point_rises_over_none_disabled_with_a_noise_estimate():
    model = tiny_model(n_routed_experts=6).eval()
    curve = expert_disabling_curve(model, uniform_loads(model), losses, ks=range(3))
    assert curve[0]["rise"] == 0.0 and curve[0]["rise_se"] == 0.0  # against itself: no change, no noise
    for point in curve[1:]:
        assert point["rise"] == pytest.approx(point["loss"] - curve[0]["loss"])
        assert point["rise_se"] > 0 and point["windows"] == 8


def test_the_curve_stops_where_too_few_experts_would_remain_and_says_so():
    model = tiny_model().eval()  # 4 experts, top-2: at most 2 can go
    curve = expert_disabling_curve(model, uniform_loads(model), losses, ks=range(5))
    assert [point["k"] for point in curve] == [0, 1, 2]
    assert "k=3" in curve[-1]["stopped"] and "n_activated_experts=2" in curve[-1]["stopped"]


def test_hash_routed_layers_keep_their_experts_and_the_curve_says_so():
    model = tiny_model(n_routed_experts=6, router="sqrtsoftplus_topk", n_hash_layers=1).eval()
    first, *others = moe_layers(model)
    curve = expert_disabling_curve(model, uniform_loads(model), losses, ks=range(3))
    assert [point["k"] for point in curve] == [0, 1, 2]
    assert all(str(first) not in point["disabled"] and len(point["disabled"]) == len(others) for point in curve)
    assert f"layers [{first}] keep every expert" in curve[0]["kept"]


def test_the_curve_leaves_the_routers_as_they_were():
    model = tiny_model().eval()
    before = pooled_loss(model)
    expert_disabling_curve(model, uniform_loads(model), losses, ks=range(3))
    assert pooled_loss(model) == before
    assert all(model.layers[layer].ffn.router.disabled_E is None for layer in moe_layers(model))


def test_experts_disabled_restores_even_after_an_error():
    model = tiny_model().eval()
    layer = moe_layers(model)[0]
    with pytest.raises(RuntimeError, match="inside"):
        with experts_disabled(model, {layer: [1]}):
            assert model.layers[layer].ffn.router.disabled_E.tolist() == [False, True, False, False]
            raise RuntimeError("inside")
    assert model.layers[layer].ffn.router.disabled_E is None


def test_experts_disabled_restores_what_was_disabled_before():
    model = tiny_model().eval()
    router = model.layers[moe_layers(model)[0]].ffn.router
    router.disable_experts([3])
    with experts_disabled(model, {moe_layers(model)[0]: [0, 1]}):
        assert router.disabled_E.tolist() == [True, True, False, False]
    assert router.disabled_E.tolist() == [False, False, False, True]


def test_experts_disabled_refuses_what_a_router_refuses_and_undoes_the_rest():
    model = tiny_model(n_layers=3).eval()
    first, second = moe_layers(model)[:2]
    with pytest.raises(ValueError, match="SoftmaxTopKRouter: disabling 3 of n_routed_experts=4"):
        with experts_disabled(model, {first: [0], second: [0, 1, 2]}):
            pass
    assert model.layers[first].ffn.router.disabled_E is None
    with pytest.raises(ValueError, match=r"layers \[7\] are not MoE layers"):
        with experts_disabled(model, {7: [0]}):
            pass


def test_shared_expert_probe_measures_the_jump_and_restores_the_model():
    model = tiny_model().eval()
    before = pooled_loss(model)
    probe = shared_expert_probe(model, losses)
    assert probe["loss"] == before and probe["loss_without_shared"] != before
    assert probe["jump"] == pytest.approx(probe["loss_without_shared"] - probe["loss"])
    assert probe["jump_se"] > 0 and probe["windows"] == 8
    assert pooled_loss(model) == before


def test_removed_shared_experts_contribute_zero_also_through_their_gate():
    model = tiny_model(shared_expert_gate=True).eval()
    moe = model.layers[moe_layers(model)[0]].ffn
    x_BLD = torch.randn(1, 4, model.config.hidden_size)
    with torch.no_grad(), shared_experts_removed(model):
        assert torch.equal(moe.shared_output(x_BLD), torch.zeros_like(x_BLD))
    assert not torch.equal(moe.shared_output(x_BLD), torch.zeros_like(x_BLD))


def test_removing_shared_experts_refuses_a_model_without_them():
    model = tiny_model(n_shared_experts=0)
    with pytest.raises(ValueError, match="no shared experts to remove"):
        with shared_experts_removed(model):
            pass


def test_most_routed_experts_breaks_ties_by_the_lower_index():
    assert most_routed_experts(np.array([3, 9, 9, 1]), 3) == [1, 2, 0]
    assert most_routed_experts(np.array([5, 5, 5]), 2) == [0, 1]
    assert most_routed_experts(np.array([1, 2]), 0) == []


def test_runs_are_compared_at_equal_shares_of_their_experts():
    # Fig. 4: GShard's 16 experts against DeepSeekMoE's 64, at 0, 1/16, ..., 4/16 of each.
    assert disabling_steps([64, 16]) == [[0, 4, 8, 12, 16], [0, 1, 2, 3, 4]]
    assert disabling_steps([16]) == [[0, 1, 2, 3, 4]]
