"""DeepSeek-V4's clamped SwiGLU (swiglu_limit): silu(min(gate, L)) * clamp(up, -L, L). Its values by hand, and every
expert kernel (the fused op with its own backward, the loop twin, the pairwise loops) against autograd of a plain
pair-by-pair implementation written here: values and gradients, with no gradient where a value was clamped."""

import pytest
import torch
import torch.nn.functional as F

from dsmoe.kernels import fused, grouped_experts, loop_experts, pairwise_experts
from test_kernel_parity import HIDDEN, TOLERANCE, expert_weights, random_pairs, rel_error, values_and_grads

LIMIT = 1.0  # the projections here have std ~0.7 x 2: the limit clamps a good share of them


def test_clamped_swiglu_by_hand():
    # gate [-1, 0, 2, 12] -> [-1, 0, 2, 10], up [3, -15, 0.5, 20] -> [3, -10, 0.5, 10]; silu(g) = g / (1 + e^-g)
    gate = torch.tensor([-1.0, 0.0, 2.0, 12.0], dtype=torch.float64, requires_grad=True)
    up = torch.tensor([3.0, -15.0, 0.5, 20.0], dtype=torch.float64, requires_grad=True)
    act = fused.swiglu(gate, up, limit=10.0)
    torch.testing.assert_close(act, torch.tensor([-0.8068242641, 0.0, 0.8807970780, 99.9954602131],
                                                 dtype=torch.float64))
    act.sum().backward()
    # d/dgate = clamp(up) * silu'(g), silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))), 0 where g > 10;
    # d/dup = silu(min(g, 10)), 0 where |up| > 10
    torch.testing.assert_close(gate.grad, torch.tensor([3 * 0.0723294881, -10 * 0.5, 0.5 * 1.0907842, 0.0],
                                                       dtype=torch.float64))
    torch.testing.assert_close(up.grad, torch.tensor([-0.2689414214, 0.0, 1.7615941560, 0.0], dtype=torch.float64))


def test_no_limit_is_the_plain_swiglu():
    gate, up = torch.randn(2, 5, generator=torch.Generator().manual_seed(0)) * 20
    assert torch.equal(fused.swiglu(gate, up), F.silu(gate) * up)


def plain_clamped_experts(x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD, down_EDF, limit):
    """The obvious math, one pair at a time: out_t += w * down_e(silu(clamp(gate_e x_t, max=L)) * clamp(up_e x_t))."""
    outputs = []
    for token, expert, weight in zip(token_index_S.tolist(), expert_index_S.tolist(), weight_S.unbind(0)):
        gate, up = (gate_up_EFD[expert] @ x_TD[token]).chunk(2)
        act = F.silu(torch.clamp(gate, max=limit)) * torch.clamp(up, min=-limit, max=limit)
        outputs.append(weight * (down_EDF[expert] @ act))
    return torch.zeros_like(x_TD).index_add(0, token_index_S, torch.stack(outputs))


def case(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    token_index_S, expert_index_S = random_pairs(11, 2, generator)
    inputs = [torch.randn(11, HIDDEN, generator=generator), torch.rand(token_index_S.numel(), generator=generator),
              *expert_weights(generator)]
    return token_index_S, expert_index_S, inputs, torch.randn(11, HIDDEN, generator=generator)


def test_the_limit_clamps_a_good_share_here():
    token_index_S, expert_index_S, (x_TD, _, gate_up_EFD, _), _ = case()
    h_SF2 = torch.einsum("sfd,sd->sf", gate_up_EFD[expert_index_S], x_TD[token_index_S])
    assert 0.2 < (h_SF2.abs() > LIMIT).float().mean() < 0.8


@pytest.mark.parametrize("rows_per_chunk", [1, 5, 10_000])
@pytest.mark.parametrize("kernel", [grouped_experts, loop_experts], ids=["fused", "loop"])
def test_kernel_equals_autograd_of_the_plain_clamped_experts(monkeypatch, kernel, rows_per_chunk):
    """Outputs and gradients of x, weights, gate_up and down; the fused op in blocks of one, a few or all experts."""
    if kernel is grouped_experts and not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch._grouped_mm is unavailable")
    monkeypatch.setattr(fused, "ROWS_PER_CHUNK", rows_per_chunk)
    token_index_S, expert_index_S, inputs, grad_out_TD = case()

    def call(kernel, x, weight, gate_up, down):
        return kernel(x, token_index_S, expert_index_S, weight, gate_up, down, LIMIT)

    ours = values_and_grads(kernel, inputs, call, grad_out_TD)
    reference = values_and_grads(plain_clamped_experts, inputs, call, grad_out_TD)
    for name, a, b in zip(["out", "x", "weight", "gate_up", "down"], ours, reference):
        assert rel_error(a, b) <= TOLERANCE, name


def test_pairwise_loops_equal_the_loop_with_a_limit():
    token_index_S, expert_index_S, (x_TD, weight_S, gate_up_EFD, down_EDF), _ = case(seed=1)
    args = (x_TD, token_index_S, expert_index_S, weight_S, gate_up_EFD, down_EDF, LIMIT)
    assert rel_error(pairwise_experts(*args), loop_experts(*args)) <= TOLERANCE
    assert rel_error(loop_experts(*args[:-1]), loop_experts(*args)) > 0.01  # the limit matters here


def test_in_place_clamped_backward_equals_autograd_with_values_at_the_limit():
    """clamp_gate_up_ then swiglu_backward_into_ then zeroing the clamped values: autograd's gradient, which passes
    where a value equals the limit exactly (and is zero beyond it)."""
    h_SF2 = torch.randn(6, 8, generator=torch.Generator().manual_seed(0)) * 2
    h_SF2[0, :4], h_SF2[1, 4:] = LIMIT, -LIMIT  # gate at the limit, up at both ends of the clamp
    grad_SF = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    leaf = h_SF2.clone().requires_grad_(True)
    fused.swiglu(*leaf.chunk(2, dim=-1), limit=LIMIT).backward(grad_SF)
    gate_SF, up_SF = h_SF2.chunk(2, dim=-1)
    clamped_SF2 = fused.clamp_gate_up_(gate_SF, up_SF, LIMIT)
    fused.swiglu_backward_into_(gate_SF, up_SF, F.silu(gate_SF), grad_SF, scratch_SF=torch.empty(6, 4))
    h_SF2.masked_fill_(clamped_SF2, 0.0)
    assert clamped_SF2.any() and (leaf.grad[clamped_SF2] == 0).all()
    torch.testing.assert_close(h_SF2, leaf.grad, rtol=1e-6, atol=1e-6)
