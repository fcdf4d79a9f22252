"""Shared against routed output norms: the two parts add up to the MoE layer's output, each computed on its own."""

import numpy as np
import torch
import torch.nn.functional as F

from dsmoe.analysis.contributions import shared_routed_norms
from tests.train.tiny import tiny_model

IDS_BL = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(0))


def loop_expert(moe, expert, x_ND):
    gate, up = moe.experts.gate_up_proj[expert].chunk(2, dim=0)  # gate rows first (RoutedExperts, model/moe.py)
    return (F.silu(x_ND @ gate.T) * (x_ND @ up.T)) @ moe.experts.down_proj[expert].T


@torch.no_grad()
def parts_of(model, layer):
    """The layer's input, its output, and its shared (gated) and routed parts recomputed from the weights."""
    moe, caught = model.layers[layer].ffn, {}
    handle = moe.register_forward_hook(lambda module, args, output: caught.update(x=args[0], out=output[0]))
    model(IDS_BL)
    handle.remove()
    x_TD = caught["x"].flatten(0, 1)
    shared_TD = torch.sigmoid(moe.shared_expert_gate(x_TD)) * moe.shared_experts(x_TD)
    routing = moe.router(x_TD, IDS_BL.flatten(), len(IDS_BL))
    routed_TD = torch.zeros_like(x_TD)
    for token, expert, weight in zip(routing.token_index_S, routing.expert_index_S, routing.weight_S):
        routed_TD[token] += weight * loop_expert(moe, expert, x_TD[token:token + 1])[0]
    return caught["out"].flatten(0, 1), shared_TD, routed_TD


def test_gated_shared_plus_routed_is_the_layer_output_and_the_norms_are_theirs():
    model = tiny_model(shared_expert_gate=True).eval()
    layer = next(i for i, block in enumerate(model.layers) if block.is_moe)
    out_TD, shared_TD, routed_TD = parts_of(model, layer)
    assert torch.allclose(shared_TD + routed_TD, out_TD, atol=1e-5)
    found = shared_routed_norms(model, [IDS_BL])[str(layer)]
    shared_T, routed_T = shared_TD.norm(dim=-1), routed_TD.norm(dim=-1)
    assert np.isclose(found["shared_norm"], shared_T.mean().item(), rtol=1e-4)
    assert np.isclose(found["routed_norm"], routed_T.mean().item(), rtol=1e-4)
    assert np.isclose(found["ratio"], (shared_T / routed_T).mean().item(), rtol=1e-4)


def test_tokens_of_several_batches_are_pooled():
    model = tiny_model().eval()
    one = shared_routed_norms(model, [IDS_BL])
    twice = shared_routed_norms(model, [IDS_BL, IDS_BL])
    for layer, numbers in twice.items():
        assert numbers["tokens"] == 2 * one[layer]["tokens"] == 2 * IDS_BL.numel()
        assert np.isclose(numbers["shared_norm"], one[layer]["shared_norm"])


def test_measured_in_eval_mode_and_the_mode_and_hooks_restored():
    model = tiny_model().train()
    in_training = shared_routed_norms(model, [IDS_BL])
    assert model.training and all(not block.ffn._forward_hooks for block in model.layers if block.is_moe)
    assert in_training == shared_routed_norms(model.eval(), [IDS_BL])


def test_layers_without_shared_experts_are_left_out():
    assert shared_routed_norms(tiny_model(n_shared_experts=0).eval(), [IDS_BL]) == {}
