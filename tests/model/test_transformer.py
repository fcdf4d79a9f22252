"""The language model: shapes, causality, seeding, tied embeddings, losses, aux losses, stats, init."""

import pytest
import torch
import torch.nn.functional as F

from dsmoe import ROUTERS, DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.model.norm import RMSNorm

VOCAB, MAX_LEN = 64, 16
TOP_K = {"switch": 1, "gshard": 2}


def make_model(seed=0, **changes) -> DeepSeekMoEForCausalLM:
    values = dict(vocab_size=VOCAB, hidden_size=32, n_layers=2, n_heads=4, max_seq_len=MAX_LEN, intermediate_size=48,
                  moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2)
    torch.manual_seed(seed)
    return DeepSeekMoEForCausalLM(ModelConfig(**{**values, **changes}))


def token_ids(batch=2, seq=12, seed=0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("router", sorted(ROUTERS))
def test_logits_have_shape_batch_seq_vocab(router):
    model = make_model(router=router, n_activated_experts=TOP_K.get(router, 2))
    assert model(token_ids(batch=3, seq=7)).logits.shape == (3, 7, VOCAB)


CAUSAL = {"softmax_topk": {}, "sigmoid_topk": dict(router="sigmoid_topk"), "hash": dict(router="hash"),
          "noisy_topk": dict(router="noisy_topk"),
          "switch": dict(router="switch", n_activated_experts=1, capacity_factor=8.0),
          "gshard": dict(router="gshard", n_activated_experts=2, capacity_factor=8.0),
          "deepseek_v4": dict(router="sqrtsoftplus_topk", n_hash_layers=1, swiglu_limit=1.0)}


@pytest.mark.parametrize("changes", CAUSAL.values(), ids=CAUSAL.keys())
def test_changing_a_token_leaves_earlier_logits_unchanged(changes):
    model = make_model(**changes).eval()
    ids = token_ids()
    changed = ids.clone()
    changed[:, 6] = (ids[:, 6] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert all(stats.dropped_tokens.item() == 0 for stats in before.router_stats + after.router_stats)
    torch.testing.assert_close(after.logits[:, :6], before.logits[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(after.logits[:, 6:], before.logits[:, 6:])


def test_soft_moe_is_not_causal_as_documented():
    model = make_model(router="soft_moe").eval()
    ids = token_ids()
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] + 1) % VOCAB
    with torch.no_grad():
        diff = (model(changed).logits[:, 0] - model(ids).logits[:, 0]).abs().max()
    assert diff > 1e-4


def test_input_longer_than_max_seq_len_raises():
    with pytest.raises(ValueError, match=f"sequence of {MAX_LEN + 1} tokens exceeds max_seq_len={MAX_LEN}"):
        make_model()(token_ids(seq=MAX_LEN + 1))


def test_input_of_exactly_max_seq_len_is_accepted():
    assert make_model()(token_ids(seq=MAX_LEN)).logits.shape[1] == MAX_LEN


def test_same_seed_gives_identical_weights():
    first, second = make_model(seed=3).state_dict(), make_model(seed=3).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_different_seeds_give_different_weights():
    first, second = make_model(seed=3).state_dict(), make_model(seed=4).state_dict()
    assert not torch.equal(first["embed_tokens.weight"], second["embed_tokens.weight"])
    assert not torch.equal(first["layers.0.ffn.experts.gate_up_proj"], second["layers.0.ffn.experts.gate_up_proj"])


def test_tied_embeddings_share_one_tensor():
    model = make_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.embed_tokens.weight


def test_untied_embeddings_are_separate_tensors():
    model = make_model()
    assert model.lm_head.weight.data_ptr() != model.embed_tokens.weight.data_ptr()


def test_loss_is_cross_entropy_plus_the_aux_losses():
    model = make_model(aux_loss_alpha=0.1, z_loss_coef=0.01).train()
    ids, labels = token_ids(), token_ids(seed=1)
    out = model(ids, labels=labels)
    cross_entropy = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten())
    assert set(out.aux_losses) == {"expert_balance", "z_loss"}
    torch.testing.assert_close(out.lm_loss, cross_entropy)
    torch.testing.assert_close(out.loss, cross_entropy + sum(out.aux_losses.values()))


def test_labels_of_minus_100_are_ignored():
    model = make_model().eval()
    ids, labels = token_ids(), token_ids(seed=1)
    labels[:, :5] = -100
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.lm_loss, F.cross_entropy(out.logits[:, 5:].flatten(0, 1), labels[:, 5:].flatten()))


def test_no_labels_means_no_loss():
    out = make_model()(token_ids())
    assert out.loss is None and out.lm_loss is None


def test_aux_losses_are_empty_in_eval_mode():
    model = make_model(aux_loss_alpha=0.1, device_balance_alpha=0.1, n_devices=2, z_loss_coef=0.01).eval()
    assert model(token_ids(), labels=token_ids(seed=1)).aux_losses == {}


AUX = {"default": ({}, {"expert_balance"}),
       "sequence": (dict(balance_scope="sequence"), {"seq_balance"}),
       "device": (dict(device_balance_alpha=0.05, n_devices=2), {"expert_balance", "device_balance"}),
       "comm": (dict(comm_balance_alpha=0.02, n_group=2, topk_group=1, n_devices=2),
                {"expert_balance", "comm_balance"}),
       "z_loss": (dict(z_loss_coef=0.001), {"expert_balance", "z_loss"}),
       "noisy_topk": (dict(router="noisy_topk"), {"importance", "load"}),
       "alpha_zero": (dict(aux_loss_alpha=0.0), set())}


@pytest.mark.parametrize("changes, names", AUX.values(), ids=AUX.keys())
def test_training_aux_losses_are_the_enabled_ones(changes, names):
    assert set(make_model(**changes).train()(token_ids()).aux_losses) == names


def test_aux_losses_are_summed_over_moe_layers():
    model = make_model(n_layers=3).train()
    per_layer = []
    for block in model.layers:
        block.ffn.register_forward_hook(lambda module, args, output: per_layer.append(output[1]["expert_balance"]))
    total = model(token_ids()).aux_losses["expert_balance"]
    assert len(per_layer) == 3
    torch.testing.assert_close(total, sum(per_layer))


@pytest.mark.parametrize("changes", [{}, dict(n_layers=4, first_k_dense_replace=1),
                                     dict(n_layers=4, moe_layer_indices=[1, 3]), dict(n_routed_experts=0)],
                         ids=["all_moe", "dense_first", "hybrid", "dense"])
def test_router_stats_has_one_entry_per_moe_layer(changes):
    model = make_model(**changes)
    out = model(token_ids())
    assert len(out.router_stats) == len(model.config.moe_layers)
    assert out.moe_layers == model.config.moe_layers


def test_rmsnorm_weights_start_at_one():
    model = make_model()
    norms = [module for module in model.modules() if isinstance(module, RMSNorm)]
    assert len(norms) == 2 * 2 + 1
    assert all(torch.equal(norm.weight, torch.ones_like(norm.weight)) for norm in norms)


def test_weight_matrices_start_with_std_init_std():
    model = make_model(init_std=0.05, hidden_size=64, moe_intermediate_size=32)
    matrices = {name: p for name, p in model.named_parameters() if p.ndim >= 2 and p.numel() >= 2048}
    assert "layers.0.ffn.experts.down_proj" in matrices and "layers.0.attn.q_proj.weight" in matrices
    for name, param in matrices.items():
        assert abs(param.std().item() / 0.05 - 1) < 0.1, name
