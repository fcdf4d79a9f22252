"""Multi-token prediction (DeepSeek-V3 Sec. 2.2): its loss is the hand-computed loop over depths, it is causal
per depth, runs only when asked for (training with labels by default), and with n_mtp_modules=0 nothing changes."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, count_params
from dsmoe.model.estimates import estimate_costs
from dsmoe.model.transformer import apply_activation_checkpointing

VOCAB, MAX_LEN = 64, 16
SMALL = dict(vocab_size=VOCAB, hidden_size=32, n_layers=2, n_heads=4, max_seq_len=MAX_LEN, intermediate_size=48,
             moe_intermediate_size=16, n_routed_experts=4, n_activated_experts=2, first_k_dense_replace=1,
             aux_loss_alpha=0.0)


def make_model(seed=0, **changes) -> DeepSeekMoEForCausalLM:
    torch.manual_seed(seed)
    return DeepSeekMoEForCausalLM(ModelConfig(**{**SMALL, "n_mtp_modules": 2, "mtp_loss_weight": 0.3, **changes}))


def token_ids(batch=2, seq=10, seed=0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def hand_computed_mtp_loss(model: DeepSeekMoEForCausalLM, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 21-25 written out: depth k combines hnorm(h^{k-1}_i) with enorm(Emb(t_{i+k})), runs its block,
    predicts t_{i+k+1} = labels[:, i + k] with the shared head; L_MTP = lambda * mean_k CE_k."""
    cos, sin = model.rope(torch.arange(ids.shape[1]))
    x = model.embed_tokens(ids)
    for block in model.layers:
        x = block(x, cos, sin, ids)[0]
    h, losses = model.norm(x), []
    for k, module in enumerate(model.mtp.layers, start=1):
        length = ids.shape[1] - k
        embedded = module.enorm(model.embed_tokens(ids[:, k:]))
        merged = module.eh_proj(torch.cat([embedded, module.hnorm(h[:, :length])], dim=-1))
        h = module.norm(module.block(merged, cos[:length], sin[:length], ids[:, k:])[0])
        losses.append(F.cross_entropy(model.lm_head(h).flatten(0, 1), labels[:, k:].flatten()))
    return model.config.mtp_loss_weight * sum(losses) / len(losses)


def test_mtp_loss_equals_the_hand_computed_loop_over_depths():
    model = make_model().train()
    ids, labels = token_ids(), token_ids(seed=1)
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.aux_losses["mtp"], hand_computed_mtp_loss(model, ids, labels), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.loss, out.lm_loss + out.aux_losses["mtp"])


def test_mtp_logits_have_one_position_fewer_per_depth():
    out = make_model(n_mtp_modules=3).eval()(token_ids(seq=10), mtp=True)
    assert [tuple(logits.shape) for logits in out.mtp_logits] == [(2, 9, VOCAB), (2, 8, VOCAB), (2, 7, VOCAB)]


def test_depths_longer_than_the_sequence_are_skipped():
    out = make_model(n_mtp_modules=3).train()(token_ids(seq=3), labels=token_ids(seq=3, seed=1))
    assert len(out.mtp_logits) == 2 and torch.isfinite(out.aux_losses["mtp"])


@torch.no_grad()
def test_depth_k_logits_at_position_i_see_only_tokens_up_to_i_plus_k():
    model = make_model().eval()
    ids = token_ids()
    changed = ids.clone()
    changed[:, 6] = (ids[:, 6] + 1) % VOCAB
    before, after = model(ids, mtp=True).mtp_logits, model(changed, mtp=True).mtp_logits
    for k, (old, new) in enumerate(zip(before, after), start=1):
        # not bitwise: the changed token moves rows between experts, and a multi-threaded GEMM's summation order
        # follows its row count (differences of ~1e-8 here, where a token that is seen moves logits by ~0.3)
        torch.testing.assert_close(old[:, :6 - k], new[:, :6 - k], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(old[:, 6 - k:], new[:, 6 - k:], rtol=1e-3, atol=1e-3)


@torch.no_grad()
def test_mtp_runs_only_when_training_with_labels_or_asked_for():
    model = make_model()
    ids, labels = token_ids(), token_ids(seed=1)
    assert model.eval()(ids, labels=labels).mtp_logits == [] and "mtp" not in model(ids, labels=labels).aux_losses
    assert model.train()(ids).mtp_logits == []
    assert model(ids, labels=labels, mtp=False).mtp_logits == []
    assert "mtp" in model.eval()(ids, labels=labels, mtp=True).aux_losses


@torch.no_grad()
def test_main_model_logits_and_lm_loss_do_not_depend_on_the_mtp_modules():
    with_mtp, without = make_model().train(), make_model(n_mtp_modules=0).train()
    without.load_state_dict(with_mtp.state_dict(), strict=False)
    ids, labels = token_ids(), token_ids(seed=1)
    first, second = with_mtp(ids, labels=labels), without(ids, labels=labels)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.lm_loss, second.lm_loss)
    assert second.mtp_logits == [] and set(second.aux_losses) == set() and second.loss == second.lm_loss


def test_zero_mtp_modules_add_no_parameters_or_components():
    model = make_model(n_mtp_modules=0)
    assert model.mtp is None and not any(name.startswith("mtp") for name in model.state_dict())
    assert count_params(model.config).by_component["mtp"] == (0, 0)


def test_mtp_parameters_are_their_own_component_with_routed_experts_activated_k_of_n():
    config = make_model().config
    model = DeepSeekMoEForCausalLM(config)
    mtp_params = {name: p.numel() for name, p in model.named_parameters() if name.startswith("mtp.")}
    routed = sum(n for name, n in mtp_params.items() if ".ffn.experts." in name)
    assert count_params(config).by_component["mtp"] == (sum(mtp_params.values()),
                                                        sum(mtp_params.values()) - routed + routed * 2 // 4)


def test_mtp_block_is_the_type_of_the_last_main_block():
    assert make_model().mtp.layers[0].block.is_moe and not make_model(n_routed_experts=0).mtp.layers[0].block.is_moe


def test_mtp_loss_trains_the_mtp_modules_and_the_shared_trunk():
    model = make_model().train()
    out = model(token_ids(), labels=token_ids(seed=1))
    out.aux_losses["mtp"].backward()
    assert model.mtp.layers[1].eh_proj.weight.grad.abs().sum() > 0
    assert model.layers[0].attn.q_proj.weight.grad.abs().sum() > 0


def test_activation_checkpointing_keeps_the_mtp_loss():
    model = make_model().train()
    ids, labels = token_ids(), token_ids(seed=1)
    expected = model(ids, labels=labels).aux_losses["mtp"]
    torch.testing.assert_close(apply_activation_checkpointing(model)(ids, labels=labels).aux_losses["mtp"], expected)


def test_mtp_with_a_kv_cache_or_without_modules_is_rejected():
    model = make_model()
    with pytest.raises(ValueError, match="mtp=True with a KV cache"):
        model(token_ids(), cache=model.new_cache(), mtp=True)
    with pytest.raises(ValueError, match="mtp=True needs MTP modules; config.n_mtp_modules=0"):
        make_model(n_mtp_modules=0)(token_ids(), mtp=True)


def count_matmul_flops(model, ids, mtp: bool) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(ids, mtp=mtp)
    return counter.get_flop_counts()["Global"][torch.ops.aten.mm]


def test_estimated_mtp_matmul_flops_match_torchs_flop_counter_per_depth_token():
    # depth k runs on L - k positions; the estimate counts every depth per main-model token
    model, ids = make_model(expert_kernel="loop").eval(), token_ids(seq=12)
    counted_extra = count_matmul_flops(model, ids, mtp=True) - count_matmul_flops(model, ids, mtp=False)
    depth_tokens = sum(ids.shape[0] * (12 - k) for k in (1, 2))
    with_mtp, without = (estimate_costs(make_model(n_mtp_modules=n).config, 2, 12) for n in (2, 0))
    estimated_extra = (with_mtp.flops_per_token_matmul + with_mtp.flops_per_token_router
                       - without.flops_per_token_matmul - without.flops_per_token_router)
    assert counted_extra * 2 == estimated_extra * depth_tokens and estimated_extra > 0


def test_mtp_adds_no_kv_cache_but_adds_activations():
    with_mtp, without = (estimate_costs(make_model(n_mtp_modules=n).config, 2, 12) for n in (2, 0))
    assert with_mtp.kv_cache_bytes_per_token == without.kv_cache_bytes_per_token
    assert with_mtp.activation_bytes > without.activation_bytes
