"""Multi-head latent attention: equals transformers' DeepSeek-V2/V3 attention, its latent cache decodes exactly,
its absorbed path equals its plain path, and it caches kv_lora_rank + qk_rope_head_dim elements per token."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, count_params
from dsmoe.model.estimates import estimate_costs
from dsmoe.model.mla import MultiHeadLatentAttention
from dsmoe.model.rope import RotaryEmbedding
from dsmoe.model.yarn import YarnScaling
from hf_reference import TOLERANCE, causal_additive_mask, max_abs_diff, randomize, transformers_module

VOCAB, MAX_LEN, HIDDEN, HEADS = 64, 16, 32, 4
MLA = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6)
YARN = dict(rope_scaling_type="yarn", rope_scaling_factor=40.0, rope_original_max_position_embeddings=8,
            rope_mscale=0.9, rope_mscale_all_dim=0.707)
HF_YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "original_max_position_embeddings": 8,
           "beta_fast": 32, "beta_slow": 1, "mscale": 0.9, "mscale_all_dim": 0.707}


def mla_config(**changes) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=VOCAB, hidden_size=HIDDEN, n_heads=HEADS, max_seq_len=MAX_LEN), **MLA,
                          **changes})


def hf_config(module, config: ModelConfig, yarn: bool):
    rope = dict(HF_YARN) if yarn else {"rope_type": "default", "rope_theta": 10000.0}  # transformers edits it
    hf = module(vocab_size=VOCAB, hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                q_lora_rank=config.q_lora_rank, kv_lora_rank=config.kv_lora_rank,
                qk_nope_head_dim=config.qk_nope_head_dim, qk_rope_head_dim=config.qk_rope_head_dim,
                v_head_dim=config.v_head_dim, max_position_embeddings=40 * 8 if yarn else MAX_LEN, rope_parameters=rope,
                rms_norm_eps=1e-6)
    hf._attn_implementation = "eager"
    return hf


def dsmoe_mla_output(config: ModelConfig, state_dict, x_BLD) -> torch.Tensor:
    attn = MultiHeadLatentAttention(config, layer_idx=0)
    attn.load_state_dict(state_dict)
    cos_LD, sin_LD = RotaryEmbedding(config.rope_head_dim, config.rope_theta, YarnScaling.from_config(config))(
        torch.arange(x_BLD.shape[1]))
    return attn(x_BLD, cos_LD, sin_LD)


V3_CASES = {"q_lora_interleaved_yarn": (16, True, True), "no_q_lora_half_split": (None, False, False),
            "q_lora_half_split_yarn": (16, False, True)}


@pytest.mark.parametrize("q_lora_rank, interleave, yarn", V3_CASES.values(), ids=V3_CASES.keys())
@pytest.mark.parametrize("absorb", [False, True], ids=["plain", "absorbed"])
@torch.no_grad()
def test_mla_equals_transformers_deepseek_v3_attention(q_lora_rank, interleave, yarn, absorb):
    v3 = transformers_module("deepseek_v3.modeling_deepseek_v3")
    config = mla_config(q_lora_rank=q_lora_rank, rope_interleave=interleave, mla_absorb=absorb,
                        **(YARN if yarn else {}))
    hf = hf_config(transformers_module("deepseek_v3.configuration_deepseek_v3").DeepseekV3Config, config, yarn)
    hf.rope_interleave = interleave
    reference = randomize(v3.DeepseekV3Attention(hf, layer_idx=0))
    x_BLD = torch.randn(2, 9, HIDDEN, generator=torch.Generator().manual_seed(1))
    positions = torch.arange(9)[None]
    expected, _ = reference(x_BLD, v3.DeepseekV3RotaryEmbedding(hf)(x_BLD, positions), causal_additive_mask(9))
    assert max_abs_diff(dsmoe_mla_output(config, reference.state_dict(), x_BLD), expected) <= TOLERANCE


@torch.no_grad()
def test_mla_with_interleaved_rope_equals_transformers_deepseek_v2_attention():
    v2 = transformers_module("deepseek_v2.modeling_deepseek_v2")
    config = mla_config(q_lora_rank=None, rope_interleave=True, **YARN)  # V2 rotates (2i, 2i+1) as complex numbers
    hf = hf_config(transformers_module("deepseek_v2.configuration_deepseek_v2").DeepseekV2Config, config, yarn=True)
    reference = randomize(v2.DeepseekV2Attention(hf, layer_idx=0))
    x_BLD = torch.randn(2, 9, HIDDEN, generator=torch.Generator().manual_seed(1))
    freqs_cis = v2.DeepseekV2RotaryEmbedding(hf)(x_BLD, torch.arange(9)[None])
    expected, _ = reference(x_BLD, attention_mask=causal_additive_mask(9), position_embeddings=freqs_cis)
    assert max_abs_diff(dsmoe_mla_output(config, reference.state_dict(), x_BLD), expected) <= TOLERANCE


def make_model(**changes) -> DeepSeekMoEForCausalLM:
    torch.manual_seed(0)
    return DeepSeekMoEForCausalLM(mla_config(n_layers=2, intermediate_size=48, moe_intermediate_size=16,
                                             n_routed_experts=4, n_activated_experts=2, first_k_dense_replace=1,
                                             rope_interleave=True, **changes)).eval()


def token_ids(batch=2, seq=12) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("absorb", [False, True], ids=["plain", "absorbed"])
@torch.no_grad()
def test_latent_cache_decoding_equals_full_recompute(absorb):
    model, ids = make_model(mla_absorb=absorb, **YARN), token_ids()
    cache, logits, start = model.new_cache(), [], 0
    for size in [5, 1, 1, 3, 1, 1]:
        logits.append(model(ids[:, start:start + size], cache=cache).logits)
        start += size
    assert max_abs_diff(torch.cat(logits, dim=1), model(ids).logits) <= 1e-5


@torch.no_grad()
def test_absorbed_path_gives_the_plain_paths_logits():
    plain, absorbed = make_model(), make_model(mla_absorb=True)
    absorbed.load_state_dict(plain.state_dict())
    assert max_abs_diff(absorbed(token_ids()).logits, plain(token_ids()).logits) <= 1e-5


def test_absorbed_path_gives_the_plain_paths_gradients():
    plain, absorbed = make_model(), make_model(mla_absorb=True)
    absorbed.load_state_dict(plain.state_dict())
    for model in (plain, absorbed):
        model(token_ids()).logits.square().mean().backward()
    grads = [(p.grad, q.grad) for p, q in zip(plain.parameters(), absorbed.parameters()) if p.grad is not None]
    assert grads and all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in grads)


@torch.no_grad()
def test_cache_holds_only_the_latent_and_the_rope_key():
    model = make_model()
    cache = model.new_cache()
    model(token_ids(seq=3), cache=cache)
    assert [tuple(k.shape) for k in cache.keys] == [(2, 1, MAX_LEN, MLA["qk_rope_head_dim"])] * 2
    assert [tuple(v.shape) for v in cache.values] == [(2, 1, MAX_LEN, MLA["kv_lora_rank"])] * 2


@torch.no_grad()
def test_estimated_cache_bytes_per_token_are_the_allocated_ones_and_below_mha():
    model = make_model()
    cache = model.new_cache()
    model(token_ids(batch=1, seq=3), cache=cache)
    allocated = sum(t.nbytes for t in cache.keys + cache.values) // MAX_LEN
    costs = estimate_costs(model.config, batch_size=1, seq_len=MAX_LEN)
    assert costs.kv_cache_bytes_per_token == allocated == 2 * (12 + 4) * 4  # layers * (d_c + d_h^R) * fp32 bytes
    assert costs.kv_cache_bytes_per_token_mha == 2 * HEADS * (8 + 4 + 6) * 4  # keys and values of every head
    assert costs.kv_cache_bytes_per_token < costs.kv_cache_bytes_per_token_mha


@pytest.mark.parametrize("q_lora_rank", [16, None])
def test_mla_parameters_count_as_attention(q_lora_rank):
    config = mla_config(q_lora_rank=q_lora_rank, n_layers=2)
    attention = sum(p.numel() for name, p in DeepSeekMoEForCausalLM(config).named_parameters() if ".attn." in name)
    q_params = HIDDEN * 16 + 16 + 16 * HEADS * 12 if q_lora_rank else HIDDEN * HEADS * 12
    per_layer = q_params + HIDDEN * 16 + 12 + 12 * HEADS * 14 + HEADS * 6 * HIDDEN  # kv_a, kv_a_norm, kv_b, o
    assert count_params(config).by_component["attention"] == (attention, attention) == (2 * per_layer,) * 2


@pytest.mark.parametrize("changes, message", [
    (dict(qk_norm="head"), "qk_norm='head' must be 'none' with attention='mla'"),
    (dict(n_kv_heads=2), "n_kv_heads=2 has no meaning with attention='mla'"),
    (dict(qk_rope_head_dim=5), "qk_rope_head_dim=5 must be even"),
    (dict(attention="mha"), "q_lora_rank=16 needs attention='mla'"),
    (dict(attention="gqa"), "attention='gqa' must be one of mha, mla"),
])
def test_invalid_latent_attention_settings_are_rejected_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        mla_config(**changes)


def test_mla_flop_estimates_match_torchs_flop_counter():
    # plain path: matmuls (router gates included) as aten.mm; the math SDPA backend computes all L x L scores and
    # values as bmm, the papers' count
    model, ids = make_model(expert_kernel="loop"), token_ids(seq=MAX_LEN)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(ids)
    counted = counter.get_flop_counts()["Global"]
    costs = estimate_costs(model.config, batch_size=2, seq_len=MAX_LEN)
    assert counted[torch.ops.aten.mm] == (costs.flops_per_token_matmul + costs.flops_per_token_router) * ids.numel()
    assert counted[torch.ops.aten.bmm] == costs.flops_per_token_attention * ids.numel()
