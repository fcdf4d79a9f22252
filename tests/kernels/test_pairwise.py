"""The pairwise expert path of compiled decoding steps: the same values as the loop reference, eagerly and under
torch.compile, and taken only while compiling, without autograd, for few pairs per expert."""

import pytest
import torch

from dsmoe.kernels import loop_experts, pairwise_experts
from dsmoe.kernels.pairwise import PAIRWISE_MAX_PAIRS_PER_EXPERT, use_pairwise
from dsmoe.model import moe
from dsmoe.model.moe import ExpertBatch, run_experts
from test_kernel_parity import N_EXPERTS, TOLERANCE, expert_weights, moe_layer, rel_error, routing_case


@pytest.mark.parametrize("case", ["random", "idle_experts", "one_expert", "single_token", "padded_batch"])
def test_pairwise_experts_match_loop(case):
    generator = torch.Generator().manual_seed(0)
    n_tokens, token_index_S, expert_index_S = routing_case(case, generator)
    x_TD = torch.randn(n_tokens, expert_weights(generator)[0].shape[-1], generator=generator)
    weight_S = torch.rand(token_index_S.numel(), generator=generator)
    args = (x_TD, token_index_S, expert_index_S, weight_S, *expert_weights(generator))
    assert rel_error(pairwise_experts(*args), loop_experts(*args)) <= TOLERANCE


def path_taken(n_pairs: int, grad: bool, expert_kernel: str = "auto") -> bool:
    """use_pairwise's answer inside a compiled function (fullgraph: the answer is traced as a constant)."""
    @torch.compile(fullgraph=True, dynamic=False)
    def decide(expert_index_S):
        return torch.ones(()) if use_pairwise(expert_kernel, expert_index_S, N_EXPERTS) else torch.zeros(())
    with torch.set_grad_enabled(grad):
        return bool(decide(torch.zeros(n_pairs, dtype=torch.long)))


def test_pairwise_path_is_taken_only_compiled_without_grad_for_few_pairs():
    few, many = PAIRWISE_MAX_PAIRS_PER_EXPERT * N_EXPERTS - 1, PAIRWISE_MAX_PAIRS_PER_EXPERT * N_EXPERTS
    assert path_taken(few, grad=False)
    assert not path_taken(many, grad=False)
    assert not path_taken(few, grad=True)
    assert not path_taken(few, grad=False, expert_kernel="loop")  # the reference stays the reference
    assert not use_pairwise("auto", torch.zeros(few, dtype=torch.long), N_EXPERTS)  # eager: never


@torch.no_grad()
def test_compiled_moe_layer_on_a_few_tokens_matches_the_eager_loop_layer():
    reference, layer = moe_layer("sigmoid_topk", "loop"), moe_layer("sigmoid_topk", "auto")
    layer.load_state_dict(reference.state_dict())
    compiled = torch.compile(layer, fullgraph=True)
    x_BLD = torch.randn(3, 1, layer.experts.gate_up_proj.shape[-1], generator=torch.Generator().manual_seed(1))
    ids_BL = torch.zeros(3, 1, dtype=torch.long)
    assert rel_error(compiled(x_BLD, ids_BL)[0], reference(x_BLD, ids_BL)[0]) <= TOLERANCE


def test_run_experts_eagerly_without_grad_keeps_the_grouped_path(monkeypatch):
    monkeypatch.setattr(moe, "pairwise_experts", lambda *args: pytest.fail("pairwise path taken eagerly"))
    generator = torch.Generator().manual_seed(0)
    n_tokens, token_index_S, expert_index_S = routing_case("random", generator)
    x_TD = torch.randn(n_tokens, expert_weights(generator)[0].shape[-1], generator=generator)
    with torch.no_grad():
        batch = ExpertBatch.from_pairs(x_TD, token_index_S, expert_index_S, torch.rand(token_index_S.numel()),
                                       N_EXPERTS)
        run_experts("auto", batch, *expert_weights(generator))
