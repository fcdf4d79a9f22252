"""Shared against routed output norms and expert redundancy, against plain re-computations."""

import numpy as np
import torch
import torch.nn.functional as F

from dsmoe.analysis.contributions import shared_routed_norms
from dsmoe.analysis.probes import experts_disabled, most_routed_experts, shared_experts_removed
from dsmoe.analysis.redundancy import expert_output_similarity, expert_weight_similarity, similarity_summary
from tests.train.tiny import tiny_model

IDS_BL = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(0))


def moe_input_and_output(model, layer):
    caught = {}
    moe = model.layers[layer].ffn
    handle = moe.register_forward_hook(lambda module, args, output: caught.update(x=args[0], out=output[0]))
    with torch.no_grad():
        model(IDS_BL)
    handle.remove()
    return caught["x"], caught["out"]


def test_norms_are_those_of_the_shared_term_and_of_the_rest():
    model = tiny_model().eval()
    layer = next(i for i, block in enumerate(model.layers) if block.is_moe)
    x, out = moe_input_and_output(model, layer)
    with torch.no_grad():
        shared = model.layers[layer].ffn.shared_experts(x)
    found = shared_routed_norms(model, [IDS_BL])[str(layer)]
    assert found["tokens"] == IDS_BL.numel()
    assert np.isclose(found["shared_norm"], shared.norm(dim=-1).mean().item(), rtol=1e-5)
    assert np.isclose(found["routed_norm"], (out - shared).norm(dim=-1).mean().item(), rtol=1e-5)


def loop_expert(moe, expert, x_ND):
    gate_up, down = moe.experts.gate_up_proj[expert], moe.experts.down_proj[expert]
    gate, up = gate_up.chunk(2, dim=0)  # gate rows first (RoutedExperts, model/moe.py)
    return (F.silu(x_ND @ gate.T) * (x_ND @ up.T)) @ down.T


def test_output_similarity_against_a_loop_over_experts():
    model = tiny_model().eval()
    moe = next(block.ffn for block in model.layers if block.is_moe)
    x_ND = torch.randn(10, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = [loop_expert(moe, e, x_ND) for e in range(model.config.n_routed_experts)]
    expected = np.array([[F.cosine_similarity(a, b, dim=-1).mean().item() for b in outputs] for a in outputs])
    assert np.allclose(expert_output_similarity(moe, x_ND), expected, atol=1e-5)


def test_a_copied_expert_is_found_as_the_most_similar_pair():
    model = tiny_model().eval()
    moe = next(block.ffn for block in model.layers if block.is_moe)
    with torch.no_grad():
        moe.experts.gate_up_proj[3] = moe.experts.gate_up_proj[1]
        moe.experts.down_proj[3] = moe.experts.down_proj[1]
    weights = similarity_summary(expert_weight_similarity(moe))
    outputs = similarity_summary(expert_output_similarity(moe, torch.randn(8, model.config.hidden_size)))
    assert weights["max_pair"] == [1, 3] and np.isclose(weights["max_off_diagonal"], 1.0)
    assert outputs["max_pair"] == [1, 3] and np.isclose(outputs["max_off_diagonal"], 1.0)


def test_probes_undo_what_they_change():
    model = tiny_model().eval()
    layer = next(i for i, block in enumerate(model.layers) if block.is_moe)
    with torch.no_grad():
        before = model(IDS_BL).logits
        with experts_disabled(model, {layer: [0]}):
            disabled = model(IDS_BL).logits
        with shared_experts_removed(model):
            no_shared = model(IDS_BL).logits
        after = model(IDS_BL).logits
    assert torch.equal(before, after)
    assert not torch.equal(before, disabled) and not torch.equal(before, no_shared)
    assert most_routed_experts(np.array([3, 9, 9, 1]), 3) == [1, 2, 0]
