"""The fused grouped-experts op beyond plain parity: its chunked in-place backward, its refusal of a second
backward, and torch.compile(fullgraph=True) of a MoE layer without graph breaks or per-step recompiles."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dsmoe.kernels import fused, grouped_experts, loop_experts, sort_by_expert
from test_kernel_parity import TOLERANCE, expert_weights, moe_layer, random_pairs, rel_error, values_and_grads

pytestmark = pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm is unavailable")


def kernel_inputs(n_tokens: int, top_k: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    token_index_S, expert_index_S = random_pairs(n_tokens, top_k, generator)
    x_TD = torch.randn(n_tokens, expert_weights(generator)[0].shape[-1], generator=generator)
    weight_S = torch.rand(token_index_S.numel(), generator=generator)
    return token_index_S, expert_index_S, [x_TD, weight_S, *expert_weights(generator)]


@pytest.mark.parametrize("rows_per_chunk", [1, 5, 10_000])
def test_expert_blocks_and_in_place_swiglu_backward_match_loop(monkeypatch, rows_per_chunk):
    """Blocks of one expert, of a few experts (ragged), or all experts: outputs and grads still equal the loop's (idle experts included: 11 tokens top-2 over 4 experts)."""
    monkeypatch.setattr(fused, "ROWS_PER_CHUNK", rows_per_chunk)
    token_index_S, expert_index_S, inputs = kernel_inputs(n_tokens=11, top_k=2)
    grad_out_TD = torch.randn_like(inputs[0])

    def call(kernel, x, weight, gate_up, down):
        return kernel(x, token_index_S, expert_index_S, weight, gate_up, down)

    fast = values_and_grads(grouped_experts, inputs, call, grad_out_TD)
    reference = values_and_grads(loop_experts, inputs, call, grad_out_TD)
    for name, a, b in zip(["out", "x", "weight", "gate_up", "down"], fast, reference):
        assert rel_error(a, b) <= TOLERANCE, name


def test_expert_blocks_cover_every_row_once_and_skip_idle_experts(monkeypatch):
    monkeypatch.setattr(fused, "ROWS_PER_CHUNK", 4)
    offsets_E = torch.tensor([0, 3, 3, 9, 10, 10], dtype=torch.int32)  # experts 0, 2, 5 idle; expert 3 has 6 rows
    blocks = [(e.start, e.stop, r.start, r.stop, o.tolist()) for e, r, o in fused.expert_chunks(offsets_E)]
    assert blocks == [(0, 4, 0, 9, [0, 3, 3, 9]), (4, 6, 9, 10, [1, 1])]
    assert fused.expert_chunks(torch.tensor([0, 0], dtype=torch.int32)) == []  # no rows: nothing to run


def test_second_backward_through_the_same_graph_is_refused():
    """The backward overwrites its saved projection with its gradient, so reusing the graph must fail loudly."""
    token_index_S, expert_index_S, inputs = kernel_inputs(n_tokens=6, top_k=2)
    leaves = [t.requires_grad_(True) for t in inputs]
    out = grouped_experts(leaves[0], token_index_S, expert_index_S, *leaves[1:])
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


class AllocationLog(TorchDispatchMode):
    """Shapes of every tensor an aten op creates by filling (zeros, full, fill_, zero_)."""

    def __init__(self):
        super().__init__()
        self.filled_shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(word in func.__name__ for word in ("zeros", "full", "fill", "zero")) and isinstance(out, torch.Tensor):
            self.filled_shapes.append(tuple(out.shape))
        return out


def test_backward_fills_no_gradient_for_the_kept_projection():
    """The kept projection h [S, 2F] is no result: autograd must not zero-fill a gradient of its size."""
    token_index_S, expert_index_S, inputs = kernel_inputs(n_tokens=6, top_k=2)
    x_TD, weight_S, gate_up_EFD, down_EDF = [t.requires_grad_(True) for t in inputs]
    order_S, offsets_E = sort_by_expert(expert_index_S, gate_up_EFD.shape[0])
    out_TD, h_SF2 = fused.grouped_swiglu_experts(x_TD, token_index_S[order_S], offsets_E, weight_S[order_S],
                                                 gate_up_EFD, down_EDF)
    assert not h_SF2.requires_grad
    log = AllocationLog()
    with log:
        out_TD.sum().backward()
    assert tuple(h_SF2.shape) not in log.filled_shapes and x_TD.grad is not None


def compare_compiled_with_eager(layer, compiled, seed: int) -> None:
    x_BLD = torch.randn(2, 8, layer.experts.gate_up_proj.shape[-1], generator=torch.Generator().manual_seed(seed))
    ids_BL = torch.zeros(2, 8, dtype=torch.long)
    results = []
    for module in (layer, compiled):
        layer.zero_grad(set_to_none=True)
        out_BLD = module(x_BLD, ids_BL)[0]
        out_BLD.square().sum().backward()
        results.append([out_BLD.detach(), layer.experts.gate_up_proj.grad, layer.router.weight.grad])
    for eager, compiled_value in zip(*results):
        assert rel_error(compiled_value, eager) <= TOLERANCE


def test_moe_layer_compiles_fullgraph_without_recompiles():
    """fullgraph=True (no graph breaks); new routings (other token counts per expert) reuse the graph; the
    compiled layer's outputs and gradients equal eager ones."""
    torch._dynamo.reset()
    layer = moe_layer("sigmoid_topk", "grouped_mm", aux_loss_alpha=0.0)
    compiled = torch.compile(layer, fullgraph=True, dynamic=False)
    compare_compiled_with_eager(layer, compiled, seed=0)
    with torch._dynamo.config.patch(error_on_recompile=True):  # config.patch restores it (monkeypatch deletes it)
        for seed in (1, 2):
            compare_compiled_with_eager(layer, compiled, seed)


def test_in_place_swiglu_backward_equals_autograd_of_silu_gate_times_up():
    generator = torch.Generator().manual_seed(0)
    h_SF2, grad_SF = torch.randn(7, 10, generator=generator) * 3, torch.randn(7, 5, generator=generator)
    leaf = h_SF2.clone().requires_grad_(True)
    gate, up = leaf.chunk(2, dim=-1)
    (torch.nn.functional.silu(gate) * up).backward(grad_SF)
    fused.swiglu_backward_into_(h_SF2[:, :5], h_SF2[:, 5:], torch.nn.functional.silu(h_SF2[:, :5]), grad_SF,
                                scratch_SF=torch.empty(7, 5))
    in_place = h_SF2
    assert torch.allclose(in_place, leaf.grad, rtol=1e-6, atol=1e-6)
