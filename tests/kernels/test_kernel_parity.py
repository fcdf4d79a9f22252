"""grouped_mm fast paths against their plain-loop twins: values and gradients, fp32, rel. error <= 1e-5."""

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.kernels import grouped_experts, loop_experts, use_grouped_mm
from dsmoe.model import MoE
from dsmoe.model.moe import ExpertBatch, run_experts
from dsmoe.model.init import init_weights
from dsmoe.routers import ROUTERS

pytestmark = pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm is unavailable")

N_EXPERTS, HIDDEN, WIDTH = 4, 16, 8  # 16 * 4 and 8 * 4 bytes: rows aligned for torch._grouped_mm
TOLERANCE = 1e-5


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def expert_weights(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    gate_up_EFD = 0.3 * torch.randn(N_EXPERTS, 2 * WIDTH, HIDDEN, generator=generator)
    down_EDF = 0.3 * torch.randn(N_EXPERTS, HIDDEN, WIDTH, generator=generator)
    return gate_up_EFD, down_EDF


def random_pairs(n_tokens: int, top_k: int, generator: torch.Generator):
    expert_index_TK = torch.rand(n_tokens, N_EXPERTS, generator=generator).topk(top_k, dim=-1).indices
    return torch.arange(n_tokens).repeat_interleave(top_k), expert_index_TK.reshape(-1)


def padded_pairs(generator: torch.Generator):
    """A [2, 6] batch whose second sequence ends in 3 padding positions; their pairs are removed."""
    batch, seq_len, top_k = 2, 6, 2
    is_padding_BL = torch.zeros(batch, seq_len, dtype=torch.bool)
    is_padding_BL[1, 3:] = True
    token_index, expert_index = random_pairs(batch * seq_len, top_k, generator)
    keep = ~is_padding_BL.reshape(-1)[token_index]
    return batch * seq_len, token_index[keep], expert_index[keep]


def routing_case(case: str, generator: torch.Generator):
    """(n_tokens, token_index_S, expert_index_S) for each routing shape under test."""
    if case == "random":
        return 10, *random_pairs(10, 2, generator)
    if case == "idle_experts":  # experts 1 and 3 receive nothing
        expert_index = torch.tensor([0, 2, 2, 0, 0, 2, 2, 0, 0, 2])
        return 5, torch.arange(5).repeat_interleave(2), expert_index
    if case == "one_expert":
        return 7, torch.arange(7), torch.full((7,), 2)
    if case == "single_token":
        return 1, torch.zeros(2, dtype=torch.long), torch.tensor([3, 1])
    if case == "padded_batch":
        return padded_pairs(generator)
    raise ValueError(case)


def values_and_grads(kernel, inputs: list[torch.Tensor], call, grad_out: torch.Tensor) -> list[torch.Tensor]:
    """The kernel's output followed by the gradients of <output, grad_out> w.r.t. each input."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = call(kernel, *leaves)
    grads = torch.autograd.grad((out * grad_out).sum(), leaves)
    return [out.detach(), *grads]


@pytest.mark.parametrize("case", ["random", "idle_experts", "one_expert", "single_token", "padded_batch"])
def test_grouped_experts_match_loop(case):
    """grouped_experts and loop_experts agree on the output and on grads of x, gate_up, down and weights."""
    generator = torch.Generator().manual_seed(0)
    n_tokens, token_index_S, expert_index_S = routing_case(case, generator)
    x_TD = torch.randn(n_tokens, HIDDEN, generator=generator)
    weight_S = torch.rand(token_index_S.numel(), generator=generator)
    gate_up_EFD, down_EDF = expert_weights(generator)
    grad_out_TD = torch.randn(n_tokens, HIDDEN, generator=generator)

    def call(kernel, x, weight, gate_up, down):
        return kernel(x, token_index_S, expert_index_S, weight, gate_up, down)

    inputs = [x_TD, weight_S, gate_up_EFD, down_EDF]
    fast = values_and_grads(grouped_experts, inputs, call, grad_out_TD)
    reference = values_and_grads(loop_experts, inputs, call, grad_out_TD)
    for name, a, b in zip(["out", "x", "weight", "gate_up", "down"], fast, reference):
        assert rel_error(a, b) <= TOLERANCE, name


def test_equal_blocks_of_slots_match_loop():
    """Soft MoE's slot batches (each expert on its own block of rows) agree between the grouped and the loop
    kernel on the output and on grads of slots, gate_up and down."""
    generator = torch.Generator().manual_seed(1)
    slots_ESD = torch.randn(N_EXPERTS, 6, HIDDEN, generator=generator)
    gate_up_EFD, down_EDF = expert_weights(generator)
    grad_out_RD = torch.randn(N_EXPERTS * 6, HIDDEN, generator=generator)

    def call(expert_kernel, slots, gate_up, down):
        return run_experts(expert_kernel, ExpertBatch.equal_blocks(slots), gate_up, down)

    inputs = [slots_ESD, gate_up_EFD, down_EDF]
    fast = values_and_grads("grouped_mm", inputs, call, grad_out_RD)
    reference = values_and_grads("loop", inputs, call, grad_out_RD)
    for name, a, b in zip(["out", "slots", "gate_up", "down"], fast, reference):
        assert rel_error(a, b) <= TOLERANCE, name


def moe_layer(router: str, expert_kernel: str, **changes) -> MoE:
    values = dict(vocab_size=64, hidden_size=HIDDEN, n_layers=1, n_heads=2, max_seq_len=8,
                  moe_intermediate_size=WIDTH, n_routed_experts=N_EXPERTS, n_activated_experts=2,
                  router=router, expert_kernel=expert_kernel)
    if router == "switch":
        values["n_activated_experts"] = 1
    torch.manual_seed(0)
    layer = MoE(ModelConfig(**{**values, **changes}))
    init_weights(layer, std=0.3)
    return layer.eval()  # eval: gshard and noisy_topk draw no random numbers


def layer_values_and_grads(layer: MoE, x_BLD: torch.Tensor, ids_BL: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output, and the gradients of y.sum() w.r.t. the input and every parameter."""
    x_BLD = x_BLD.clone().requires_grad_(True)
    y_BLD, _, _ = layer(x_BLD, ids_BL)
    y_BLD.sum().backward()
    return {"y": y_BLD.detach(), "x": x_BLD.grad, **{n: p.grad for n, p in layer.named_parameters()}}


@pytest.mark.parametrize("router", list(ROUTERS))
def test_moe_layer_grouped_mm_matches_loop(router):
    """The MoE layer with expert_kernel='grouped_mm' equals expert_kernel='loop' (same weights), values and grads of y.sum()."""
    generator = torch.Generator().manual_seed(2)
    x_BLD = torch.randn(2, 8, HIDDEN, generator=generator)
    ids_BL = torch.randint(0, 64, (2, 8), generator=generator)
    fast = layer_values_and_grads(moe_layer(router, "grouped_mm"), x_BLD, ids_BL)
    reference = layer_values_and_grads(moe_layer(router, "loop"), x_BLD, ids_BL)
    assert fast.keys() == reference.keys()
    for name, expected in reference.items():
        if expected is None:  # a parameter the eval forward does not use (noisy_topk's noise weight)
            assert fast[name] is None, name
        else:
            assert rel_error(fast[name], expected) <= TOLERANCE, name


def test_auto_kernel_uses_grouped_mm_on_aligned_shapes():
    """expert_kernel='auto' picks grouped_mm when every row is a multiple of 16 bytes."""
    assert use_grouped_mm("auto", torch.zeros(3, HIDDEN), torch.zeros(N_EXPERTS, 2 * WIDTH, HIDDEN))


@pytest.mark.parametrize("width,hidden", [(6, 16), (8, 18)])
def test_auto_kernel_falls_back_to_loop_on_unaligned_shapes(width, hidden):
    """expert_kernel='auto' picks the loop when the expert width or hidden size rows are not 16-byte aligned."""
    assert not use_grouped_mm("auto", torch.zeros(3, hidden), torch.zeros(N_EXPERTS, 2 * width, hidden))


def test_forced_grouped_mm_on_unaligned_shapes_raises_naming_expert_kernel():
    """expert_kernel='grouped_mm' on unaligned shapes raises a ValueError that names the field."""
    layer = moe_layer("softmax_topk", "grouped_mm", moe_intermediate_size=6)
    with pytest.raises(ValueError, match="expert_kernel='grouped_mm'"):
        layer(torch.randn(1, 4, HIDDEN), torch.zeros(1, 4, dtype=torch.long))


def test_auto_kernel_on_unaligned_layer_equals_loop():
    """A MoE layer with unaligned experts and expert_kernel='auto' runs and gives the loop's output."""
    x_BLD, ids_BL = torch.randn(2, 4, HIDDEN), torch.zeros(2, 4, dtype=torch.long)
    auto, _, _ = moe_layer("softmax_topk", "auto", moe_intermediate_size=6)(x_BLD, ids_BL)
    loop, _, _ = moe_layer("softmax_topk", "loop", moe_intermediate_size=6)(x_BLD, ids_BL)
    assert torch.equal(auto, loop)
