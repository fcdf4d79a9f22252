"""Activation checkpointing changes nothing but memory; bf16 autocast trains with a finite, close loss."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, apply_activation_checkpointing
from dsmoe.routers import apply_router_updates

VOCAB = 64


def make_model(**changes) -> DeepSeekMoEForCausalLM:
    values = dict(vocab_size=VOCAB, hidden_size=32, n_layers=3, n_heads=4, max_seq_len=16, intermediate_size=48,
                  moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2,
                  first_k_dense_replace=1, aux_loss_alpha=0.1, z_loss_coef=0.01)
    torch.manual_seed(0)
    return DeepSeekMoEForCausalLM(ModelConfig(**{**values, **changes})).train()


def batch(seq=12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randint(0, VOCAB, (2, seq), generator=generator) for _ in range(2))


def loss_and_grads(model) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    ids, labels = batch()
    loss = model(ids, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("router", ["softmax_topk", "sigmoid_topk", "noisy_topk"])
def test_checkpointing_gives_the_same_loss_and_gradients(router):
    loss, grads = loss_and_grads(make_model(router=router))
    checkpointed_loss, checkpointed_grads = loss_and_grads(apply_activation_checkpointing(make_model(router=router)))
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=0, atol=1e-6, msg=name)


def test_checkpointing_recomputes_each_block_in_backward():
    model = apply_activation_checkpointing(make_model())
    calls = []
    for block in model.layers:
        block.register_forward_pre_hook(lambda *_: calls.append(1))
    loss_and_grads(model)
    assert len(calls) == 2 * len(model.layers)


def test_checkpointing_leaves_the_sigmoid_bias_update_unchanged():
    # the recomputed forward counts every token again; the sign rule must make that harmless
    model = make_model(router="sigmoid_topk")
    checkpointed = apply_activation_checkpointing(make_model(router="sigmoid_topk"))
    for m in (model, checkpointed):
        loss_and_grads(m)
        apply_router_updates(m)
    biases = [m.layers[1].ffn.router.expert_bias for m in (model, checkpointed)]
    assert biases[0].abs().sum() > 0
    assert torch.equal(biases[1], biases[0])


def test_bf16_autocast_forward_and_backward_give_a_finite_loss_close_to_fp32():
    fp32_loss, _ = loss_and_grads(make_model())
    model = make_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_loss, grads = loss_and_grads(model)
    assert torch.isfinite(bf16_loss) and all(torch.isfinite(g).all() for g in grads.values())
    assert abs(bf16_loss.item() - fp32_loss.item()) < 0.05 * fp32_loss.item()
