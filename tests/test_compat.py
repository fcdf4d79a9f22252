"""The seed API keeps working: DeepSeekMoEConfig/DeepSeekMoEModel, MoETransformerLM, HybridMoETransformerLM."""

import torch

from dsmoe import DeepSeekMoEConfig, DeepSeekMoEModel, HybridMoETransformerLM, MoETransformerLM
from dsmoe.model import MoE

VOCAB = 100
# d_model, n_head, vocab_size, max_seq_len, d_ff, theta, n_layer, n_experts, top_k
SEED_ARGS = (64, 4, VOCAB, 32, 48, 5000.0, 3, 8, 2)


def _input_ids(batch=2, seq=10):
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(0))


def test_seed_config_names_map_to_model_config_fields():
    cfg = DeepSeekMoEConfig(hidden_size=64, num_shared_experts=1, num_routed_experts=8, num_experts_per_token=2,
                            vocab_size=VOCAB, num_layers=2, num_heads=4)
    assert (cfg.n_shared_experts, cfg.n_routed_experts, cfg.n_activated_experts, cfg.n_layers, cfg.n_heads) == \
        (1, 8, 2, 2, 4)


def test_seed_model_call_returns_logits_batch_seq_vocab():
    torch.manual_seed(0)
    cfg = DeepSeekMoEConfig(hidden_size=64, num_shared_experts=1, num_routed_experts=8, num_experts_per_token=2,
                            vocab_size=VOCAB, n_layers=2, n_heads=4, intermediate_size=128, moe_intermediate_size=32,
                            max_seq_len=32)
    logits = DeepSeekMoEModel(cfg)(_input_ids())
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 10, VOCAB)


def test_moe_transformer_lm_positional_args_map_to_config_fields():
    cfg = MoETransformerLM(*SEED_ARGS, True, 0.05).config
    assert (cfg.hidden_size, cfg.n_heads, cfg.vocab_size, cfg.max_seq_len, cfg.moe_intermediate_size, cfg.rope_theta,
            cfg.n_layers, cfg.n_routed_experts, cfg.n_activated_experts, cfg.aux_loss_alpha) == \
        (64, 4, VOCAB, 32, 48, 5000.0, 3, 8, 2, 0.05)
    assert (cfg.intermediate_size, cfg.n_shared_experts) == (48, 0)


def test_moe_transformer_lm_returns_logits():
    torch.manual_seed(0)
    assert MoETransformerLM(*SEED_ARGS, True, 0.01)(_input_ids()).shape == (2, 10, VOCAB)


def test_moe_transformer_lm_aux_loss_is_a_positive_scalar_in_training():
    torch.manual_seed(0)
    model = MoETransformerLM(*SEED_ARGS, True, 0.01).train()
    model(_input_ids())
    aux = model.get_aux_loss()
    assert aux.shape == () and aux.item() > 0 and aux.requires_grad


def test_moe_transformer_lm_aux_loss_is_zero_when_disabled():
    torch.manual_seed(0)
    model = MoETransformerLM(*SEED_ARGS, False, 0.01).train()
    model(_input_ids())
    assert model.get_aux_loss().item() == 0.0


def test_hybrid_model_has_moe_only_in_the_given_layers():
    torch.manual_seed(0)
    model = HybridMoETransformerLM(*SEED_ARGS, moe_layer_indices=[1])
    assert [isinstance(block.ffn, MoE) for block in model.layers] == [False, True, False]
    assert model(_input_ids()).shape == (2, 10, VOCAB)
