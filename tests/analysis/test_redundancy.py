"""Expert redundancy: the similarity matrices' shape and symmetry, the sampled layer inputs, and the summary."""

import numpy as np
import torch

from dsmoe.analysis.redundancy import (expert_output_similarity, expert_weight_similarity, moe_inputs,
                                       redundancy_numbers, similarity_summary)
from tests.train.tiny import tiny_model

IDS_BL = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(0))


def first_moe(model):
    return next(block.ffn for block in model.layers if block.is_moe)


def test_both_similarities_are_symmetric_with_a_unit_diagonal():
    model = tiny_model(n_routed_experts=6).eval()
    x_ND = torch.randn(12, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    for similarity_EE in (expert_output_similarity(first_moe(model), x_ND), expert_weight_similarity(first_moe(model))):
        assert similarity_EE.shape == (6, 6)
        assert np.allclose(similarity_EE, similarity_EE.T, atol=1e-12) and np.allclose(np.diag(similarity_EE), 1.0)
        assert (np.abs(similarity_EE) <= 1 + 1e-9).all()


def test_layer_inputs_are_the_first_max_tokens_rows_the_layer_saw():
    model = tiny_model().eval()
    moe, seen = first_moe(model), []
    handle = moe.register_forward_pre_hook(lambda module, args: seen.append(args[0].flatten(0, 1)))
    with torch.no_grad():
        model(IDS_BL)
    handle.remove()
    caught = moe_inputs(model, [IDS_BL, IDS_BL], max_tokens=20)
    layer = next(i for i, block in enumerate(model.layers) if block.is_moe)
    assert torch.equal(caught[layer], seen[0][:20])
    assert not moe._forward_pre_hooks


def test_summary_of_a_known_matrix():
    similarity_EE = np.array([[1.0, 0.2, -0.4], [0.2, 1.0, 0.7], [-0.4, 0.7, 1.0]])
    summary = similarity_summary(similarity_EE)
    assert np.isclose(summary["mean_off_diagonal"], (0.2 - 0.4 + 0.7) / 3)
    assert summary["max_off_diagonal"] == 0.7 and summary["max_pair"] == [1, 2]


def test_numbers_for_every_moe_layer():
    model = tiny_model(n_layers=3).eval()
    numbers = redundancy_numbers(model, [IDS_BL], max_tokens=16)
    assert set(numbers) == {str(i) for i, block in enumerate(model.layers) if block.is_moe}
    for layer, summaries in numbers.items():
        assert np.allclose(summaries["weights"]["matrix"], expert_weight_similarity(model.layers[int(layer)].ffn))
