"""RMSNorm and RoPE against their formulas (and transformers' Llama RoPE where installed)."""

import pytest
import torch

from dsmoe.model.norm import RMSNorm
from dsmoe.model.rope import RotaryEmbedding, apply_rope

HEAD_DIM, BASE = 16, 500.0


def test_rmsnorm_matches_its_formula():
    torch.manual_seed(0)
    norm = RMSNorm(24, eps=1e-5)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 5, 24) * 4
    expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected, rtol=1e-6, atol=1e-6)


def test_rmsnorm_of_bf16_input_is_computed_in_fp32_and_returned_in_bf16():
    torch.manual_seed(0)
    x = torch.randn(4, 32).to(torch.bfloat16)
    out = RMSNorm(32, eps=1e-6)(x)
    x32 = x.float()
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, (x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16))


def rope_by_complex_numbers(x_BHLD: torch.Tensor, positions_L: torch.Tensor) -> torch.Tensor:
    """Pair i is (x_i, x_{i+d/2}) as a complex number rotated by pos * BASE^(-2i/d) (RoFormer, Su et al. 2021)."""
    half = HEAD_DIM // 2
    theta = BASE ** (-2 * torch.arange(half, dtype=torch.float64) / HEAD_DIM)
    rotation = torch.polar(torch.ones(len(positions_L), half, dtype=torch.float64), positions_L[:, None] * theta)
    z = torch.complex(x_BHLD[..., :half].double(), x_BHLD[..., half:].double()) * rotation
    return torch.cat([z.real, z.imag], dim=-1).float()


def test_rope_rotates_each_half_split_pair_by_its_position_angle():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, HEAD_DIM)
    positions = torch.arange(5, 12)
    cos, sin = RotaryEmbedding(HEAD_DIM, BASE)(positions)
    torch.testing.assert_close(apply_rope(x, cos, sin), rope_by_complex_numbers(x, positions.double()),
                               rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_the_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, HEAD_DIM), torch.randn(1, 1, 1, HEAD_DIM)
    rope = RotaryEmbedding(HEAD_DIM, BASE)

    def score(q_pos: int, k_pos: int) -> torch.Tensor:
        return (apply_rope(q, *rope(torch.tensor([q_pos]))) * apply_rope(k, *rope(torch.tensor([k_pos])))).sum()

    torch.testing.assert_close(score(9, 4), score(5, 0), rtol=1e-5, atol=1e-5)


def test_rope_matches_transformers_llama():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 6, HEAD_DIM), torch.randn(2, 2, 6, HEAD_DIM)
    cos, sin = RotaryEmbedding(HEAD_DIM, BASE)(torch.arange(6))
    expected_q, expected_k = llama.apply_rotary_pos_emb(q, k, cos[None], sin[None])
    torch.testing.assert_close(apply_rope(q, cos, sin), expected_q)
    torch.testing.assert_close(apply_rope(k, cos, sin), expected_k)


def test_rope_keeps_the_input_dtype():
    cos, sin = RotaryEmbedding(HEAD_DIM, BASE)(torch.arange(4))
    assert apply_rope(torch.randn(1, 1, 4, HEAD_DIM).to(torch.bfloat16), cos, sin).dtype == torch.bfloat16
