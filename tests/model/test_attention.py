"""Attention: grouped-query attention equals plain attention over repeated key/value heads."""

import math

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.model.attention import Attention, causal_mask
from dsmoe.model.rope import RotaryEmbedding, apply_rope

N_HEADS, HEAD_DIM, HIDDEN = 4, 8, 32


def reference_attention(attn: Attention, x_BLD, cos_LD, sin_LD, n_kv_heads: int) -> torch.Tensor:
    """Softmax(Q K^T / sqrt(d) + causal mask) V with each kv head repeated for its group of query heads."""
    batch, seq_len, _ = x_BLD.shape
    q = (x_BLD @ attn.q_proj.weight.T).view(batch, seq_len, N_HEADS, HEAD_DIM).transpose(1, 2)
    k = (x_BLD @ attn.k_proj.weight.T).view(batch, seq_len, n_kv_heads, HEAD_DIM).transpose(1, 2)
    v = (x_BLD @ attn.v_proj.weight.T).view(batch, seq_len, n_kv_heads, HEAD_DIM).transpose(1, 2)
    q, k = apply_rope(q, cos_LD, sin_LD), apply_rope(k, cos_LD, sin_LD)
    k, v = (t.repeat_interleave(N_HEADS // n_kv_heads, dim=1) for t in (k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(HEAD_DIM)
    future = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    out = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
    return out.transpose(1, 2).reshape(batch, seq_len, -1) @ attn.o_proj.weight.T


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_grouped_query_attention_equals_repeated_kv_heads(n_kv_heads):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=HIDDEN, n_heads=N_HEADS, n_kv_heads=n_kv_heads, head_dim=HEAD_DIM)
    attn = Attention(cfg, layer_idx=0)
    for weight in (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight):
        torch.nn.init.normal_(weight, std=0.3)
    x_BLD = torch.randn(2, 9, HIDDEN)
    cos_LD, sin_LD = RotaryEmbedding(HEAD_DIM, 10000.0)(torch.arange(9))
    expected = reference_attention(attn, x_BLD, cos_LD, sin_LD, n_kv_heads)
    torch.testing.assert_close(attn(x_BLD, cos_LD, sin_LD), expected, rtol=1e-5, atol=1e-5)


def test_causal_mask_lets_each_query_see_the_past_and_itself():
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(n_query=3, n_past=2, device=torch.device("cpu")), expected)
