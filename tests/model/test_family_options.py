"""Family options against transformers' own modules: q/k/v biases (Qwen2-MoE), per-head and full qk-norm
(Qwen3-MoE, OLMoE), the gated shared expert (Qwen2-MoE), and each family's MoE routing (Mixtral, OLMoE,
Qwen3-MoE, DeepSeek-V2 greedy and group-limited, DeepSeek-V3 noaux_tc) with dsmoe's existing routers."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, count_params
from dsmoe.model.attention import Attention
from dsmoe.model.moe import MoE
from dsmoe.model.rope import RotaryEmbedding
from dsmoe.routers import ROUTERS
from hf_reference import TOLERANCE, causal_additive_mask, max_abs_diff, randomize, transformers_module

HIDDEN, HEADS, KV_HEADS, SEQ = 32, 4, 2, 7

ATTENTIONS = {  # transformers family: (its config changes, the dsmoe fields that express it)
    "qwen2_moe": (dict(qkv_bias=True), dict(attention_bias=True)),
    "qwen3_moe": (dict(head_dim=16, attention_bias=True), dict(head_dim=16, attention_bias=True, o_proj_bias=True,
                                                                qk_norm="head")),
    "olmoe": (dict(), dict(qk_norm="full")),
}
CLASS_PREFIX = {"qwen2_moe": "Qwen2Moe", "qwen3_moe": "Qwen3Moe", "olmoe": "Olmoe", "mixtral": "Mixtral",
                "deepseek_v2": "DeepseekV2", "deepseek_v3": "DeepseekV3"}


def hf_parts(family: str, **config_fields):
    """(modeling module, class prefix, config) of a transformers family with eager attention."""
    modeling = transformers_module(f"{family}.modeling_{family}")
    config_class = getattr(transformers_module(f"{family}.configuration_{family}"), f"{CLASS_PREFIX[family]}Config")
    config = config_class(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                          rms_norm_eps=1e-6, **config_fields)
    config._attn_implementation = "eager"
    return modeling, CLASS_PREFIX[family], config


@pytest.mark.parametrize("family", ATTENTIONS)
@torch.no_grad()
def test_attention_options_equal_transformers_attention(family):
    hf_fields, dsmoe_fields = ATTENTIONS[family]
    modeling, prefix, hf = hf_parts(family, **hf_fields)
    reference = randomize(getattr(modeling, f"{prefix}Attention")(hf, layer_idx=0))
    attn = Attention(ModelConfig(hidden_size=HIDDEN, n_heads=HEADS, n_kv_heads=KV_HEADS, **dsmoe_fields), layer_idx=0)
    attn.load_state_dict(reference.state_dict())
    x_BLD = torch.randn(2, SEQ, HIDDEN, generator=torch.Generator().manual_seed(1))
    position_embeddings = getattr(modeling, f"{prefix}RotaryEmbedding")(hf)(x_BLD, torch.arange(SEQ)[None])
    expected, _ = reference(x_BLD, position_embeddings=position_embeddings, attention_mask=causal_additive_mask(SEQ))
    cos_LD, sin_LD = RotaryEmbedding(attn.head_dim, 10000.0)(torch.arange(SEQ))
    assert max_abs_diff(attn(x_BLD, cos_LD, sin_LD), expected) <= TOLERANCE


EXPERTS = dict(n_routed_experts=8, n_activated_experts=2, moe_intermediate_size=16)
HF_EXPERTS = dict(num_experts_per_tok=2, moe_intermediate_size=16)
V2_GROUPS = dict(n_group=2, topk_group=1)  # top-2 of 8 experts in the best group of 4: the limit bites
V3_GROUPS = dict(n_group=4, topk_group=2)
MOE_BLOCKS = {  # family: (its MoE block class suffix, its config changes, the dsmoe fields that express it)
    "qwen2_moe": ("SparseMoeBlock", dict(num_experts=8, shared_expert_intermediate_size=24, norm_topk_prob=False),
                  dict(n_shared_experts=1, shared_expert_intermediate_size=24, shared_expert_gate=True)),
    "qwen3_moe": ("SparseMoeBlock", dict(num_experts=8, norm_topk_prob=True),
                  dict(n_shared_experts=0, norm_topk_prob=True)),
    "olmoe": ("SparseMoeBlock", dict(num_experts=8, intermediate_size=16, norm_topk_prob=False),
              dict(n_shared_experts=0)),
    "mixtral": ("SparseMoeBlock", dict(num_local_experts=8, intermediate_size=16),
                dict(n_shared_experts=0, norm_topk_prob=True)),  # Mixtral = softmax_topk + norm_topk_prob
    "deepseek_v2": ("Moe", dict(n_routed_experts=8, n_shared_experts=2, topk_method="greedy", routed_scaling_factor=16.0),
                    dict(n_shared_experts=2, routed_scaling_factor=16.0)),
    "deepseek_v2_group_limited": ("Moe", dict(n_routed_experts=8, n_shared_experts=2, topk_method="group_limited_greedy",
                                              routed_scaling_factor=16.0, **V2_GROUPS),
                                  dict(n_shared_experts=2, routed_scaling_factor=16.0, **V2_GROUPS)),
    "deepseek_v3": ("MoE", dict(n_routed_experts=8, n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
                                **V3_GROUPS),
                    dict(router="sigmoid_topk", n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
                         **V3_GROUPS)),
}
RENAMES = (("gate.e_score_correction_bias", "router.expert_bias"), ("gate.", "router."),
           ("shared_expert.", "shared_experts."))


def dsmoe_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' MoE block names -> dsmoe's (a prefix rename; expert tensors share the [E, 2F, D] layout)."""
    renamed = {}
    for name, tensor in hf_state.items():
        for old, new in RENAMES:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        renamed[name] = tensor
    return renamed


@pytest.mark.parametrize("name", MOE_BLOCKS)
@torch.no_grad()
def test_moe_block_equals_transformers_moe_block(name):
    family = name.removesuffix("_group_limited")
    block_suffix, hf_fields, dsmoe_fields = MOE_BLOCKS[name]
    modeling, prefix, hf = hf_parts(family, **HF_EXPERTS, **hf_fields)
    reference = randomize(getattr(modeling, f"{prefix}{block_suffix}")(hf)).eval()
    for buffer in reference.buffers():  # DeepSeek-V3's e_score_correction_bias
        buffer.copy_(torch.randn(buffer.shape, generator=torch.Generator().manual_seed(2)) * 0.1)
    moe = MoE(ModelConfig(hidden_size=HIDDEN, n_heads=HEADS, expert_kernel="loop", **EXPERTS, **dsmoe_fields)).eval()
    moe.load_state_dict(dsmoe_state_dict(reference.state_dict()))
    x_BLD = torch.randn(3, SEQ, HIDDEN, generator=torch.Generator().manual_seed(1))
    out_BLD, _, _ = moe(x_BLD, torch.zeros(3, SEQ, dtype=torch.long))
    expected_BLD = reference(x_BLD.clone())
    # routed_scaling_factor=16 makes outputs ~50: fp32 rounding scales with them, so the bound is relative
    assert max_abs_diff(out_BLD, expected_BLD) <= TOLERANCE * max(1.0, expected_BLD.abs().max().item())


def dense_weights(router, x_TD: torch.Tensor) -> torch.Tensor:
    """dsmoe routing as a [T, E] matrix of combine weights (0 for unchosen experts)."""
    routing = router(x_TD, torch.zeros(len(x_TD), dtype=torch.long), 1)
    return torch.zeros(len(x_TD), router.n_experts).index_put_((routing.token_index_S, routing.expert_index_S),
                                                                routing.weight_S)


def test_mixtral_softmax_over_topk_logits_equals_renormalised_topk_of_the_softmax():
    # Mixtral's paper and reference code: topk over the logits, then softmax over those k; the softmax is
    # monotonic, so it picks the same experts, and e^{l_i} / sum_{j in K} e^{l_j} = p_i / sum_{j in K} p_j.
    config = ModelConfig(hidden_size=HIDDEN, n_routed_experts=8, n_activated_experts=2, norm_topk_prob=True)
    router = randomize(ROUTERS["softmax_topk"](config)).eval()
    x_TD = torch.randn(64, HIDDEN, generator=torch.Generator().manual_seed(1))
    top_logits, top_experts = (x_TD @ router.weight.T).topk(2, dim=-1)
    expected = torch.zeros(64, 8).scatter_(1, top_experts, top_logits.softmax(dim=-1))
    torch.testing.assert_close(dense_weights(router, x_TD), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("topk_method, n_group", [("greedy", 1), ("group_limited_greedy", 4)])
@torch.no_grad()
def test_deepseek_v2_gate_scales_without_renormalising(topk_method, n_group):
    # transformers' DeepseekV2TopkRouter ignores norm_topk_prob and always multiplies by routed_scaling_factor;
    # DeepSeek's own V2 code scales only when it does not renormalise. dsmoe renormalises first, then scales,
    # so V2 is norm_topk_prob=False with the factor (and renormalised V2 is norm_topk_prob=True, factor 1.0).
    modeling, _, hf = hf_parts("deepseek_v2", n_routed_experts=16, num_experts_per_tok=4, n_group=n_group,
                               topk_group=2 if n_group > 1 else 1, topk_method=topk_method, routed_scaling_factor=16.0)
    reference = randomize(modeling.DeepseekV2TopkRouter(hf))
    config = ModelConfig(hidden_size=HIDDEN, n_routed_experts=16, n_activated_experts=4, n_group=n_group,
                         topk_group=hf.topk_group, routed_scaling_factor=16.0)
    router = ROUTERS["softmax_topk"](config).eval()
    router.load_state_dict(reference.state_dict())
    x_TD = torch.randn(64, HIDDEN, generator=torch.Generator().manual_seed(1))
    _, weights_TK, experts_TK = reference(x_TD)
    expected = torch.zeros(64, 16).scatter_(1, experts_TK, weights_TK)
    assert max_abs_diff(dense_weights(router, x_TD), expected) <= TOLERANCE


@torch.no_grad()
def test_deepseek_v3_noaux_tc_gate_equals_sigmoid_topk_with_bias():
    modeling, _, hf = hf_parts("deepseek_v3", n_routed_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2,
                               norm_topk_prob=True, routed_scaling_factor=2.5)
    reference = randomize(modeling.DeepseekV3TopkRouter(hf))
    reference.e_score_correction_bias.copy_(torch.randn(16, generator=torch.Generator().manual_seed(2)) * 0.1)
    config = ModelConfig(hidden_size=HIDDEN, router="sigmoid_topk", n_routed_experts=16, n_activated_experts=4,
                         n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5)
    router = ROUTERS["sigmoid_topk"](config).eval()
    router.weight.copy_(reference.weight)
    router.expert_bias.copy_(reference.e_score_correction_bias)
    x_TD = torch.randn(64, HIDDEN, generator=torch.Generator().manual_seed(1))
    _, weights_TK, experts_TK = reference(x_TD)
    expected = torch.zeros(64, 16).scatter_(1, experts_TK, weights_TK)
    assert max_abs_diff(dense_weights(router, x_TD), expected) <= TOLERANCE


SMALL = dict(vocab_size=64, hidden_size=HIDDEN, n_layers=2, n_heads=HEADS, n_kv_heads=KV_HEADS, max_seq_len=16,
             intermediate_size=48, moe_intermediate_size=16, n_routed_experts=8, n_activated_experts=2)


def test_new_parameters_are_counted_in_their_components():
    plain = count_params(ModelConfig(**SMALL)).by_component
    options = dict(attention_bias=True, o_proj_bias=True, qk_norm="head", shared_expert_gate=True,
                   shared_expert_intermediate_size=24)
    counted = count_params(ModelConfig(**SMALL, **options))
    model = DeepSeekMoEForCausalLM(ModelConfig(**SMALL, **options))
    head_dim = HIDDEN // HEADS
    biases_and_norms = (HIDDEN + 2 * KV_HEADS * head_dim) + HIDDEN + 2 * head_dim  # q/k/v biases, o bias, q/k norms
    assert counted.by_component["attention"][0] == plain["attention"][0] + 2 * biases_and_norms
    assert counted.by_component["shared_experts"][0] == 2 * (3 * HIDDEN * 24 + HIDDEN)  # width 24 plus the gate
    assert counted.total == sum(p.numel() for p in model.parameters())


def test_biases_start_at_zero():
    model = DeepSeekMoEForCausalLM(ModelConfig(**SMALL, attention_bias=True, o_proj_bias=True))
    biases = [p for name, p in model.named_parameters() if name.endswith(".bias")]
    assert len(biases) == 2 * 4 and all(torch.equal(b, torch.zeros_like(b)) for b in biases)


@pytest.mark.parametrize("changes, message", [
    (dict(qk_norm="layer"), "qk_norm='layer' must be one of none, head, full"),
    (dict(n_shared_experts=0, shared_expert_gate=True), "shared_expert_gate=True needs a shared expert"),
    (dict(n_shared_experts=0, shared_expert_intermediate_size=24),
     "shared_expert_intermediate_size=24 needs n_shared_experts >= 1"),
    (dict(mla_absorb=True), "mla_absorb=True needs attention='mla'"),
])
def test_invalid_family_options_are_rejected_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**SMALL, **changes})
