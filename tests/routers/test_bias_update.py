"""The aux-loss-free expert bias of sigmoid_topk (DeepSeek-V3 Sec. 2.1.2), updated in the optimizer step."""

import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig, apply_activation_checkpointing, install_router_updates
from dsmoe.routers.sigmoid_topk import SigmoidTopKRouter

GAMMA = 0.01


def tiny_model() -> DeepSeekMoEForCausalLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, hidden_size=32, n_layers=2, n_heads=2, max_seq_len=16,
                         intermediate_size=64, moe_intermediate_size=16, n_routed_experts=8,
                         n_activated_experts=2, router="sigmoid_topk", bias_update_speed=GAMMA, init_std=0.5)
    return DeepSeekMoEForCausalLM(config)


def batch() -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))


def routers(model) -> list[SigmoidTopKRouter]:
    return [m for m in model.modules() if isinstance(m, SigmoidTopKRouter)]


def biases(model) -> list[torch.Tensor]:
    return [router.expert_bias.clone() for router in routers(model)]


def train_step(model, optimizer, ids: torch.Tensor):
    """One forward/backward/step; returns the forward's output."""
    out = model(ids, labels=ids)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return out


def test_step_moves_bias_by_exactly_gamma_against_load():
    """Overloaded experts' bias drops by exactly gamma, underloaded ones' rises by exactly gamma."""
    model = tiny_model().train()
    for router in routers(model):
        router.expert_bias.copy_(0.05 * torch.randn(8))
    before = biases(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    install_router_updates(optimizer, model)
    out = train_step(model, optimizer, batch())
    for stats, old, new in zip(out.router_stats, before, biases(model)):
        load_E = stats.tokens_per_expert.float()
        assert (load_E > load_E.mean()).any() and (load_E < load_E.mean()).any()  # loads are unequal
        assert torch.equal(new, old + GAMMA * torch.sign(load_E.mean() - load_E))


def test_expert_bias_is_a_buffer_without_grad():
    """expert_bias is not a parameter, needs no grad and gets none from backward; it is saved in state_dict."""
    model = tiny_model().train()
    ids = batch()
    model(ids, labels=ids).loss.backward()
    parameter_ids = {id(p) for p in model.parameters()}
    state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, SigmoidTopKRouter):
            assert id(module.expert_bias) not in parameter_ids
            assert not module.expert_bias.requires_grad and module.expert_bias.grad is None
            assert f"{name}.expert_bias" in state


def test_eval_forward_leaves_bias_frozen():
    """Eval-mode forwards accumulate no load, so a following optimizer step leaves the bias unchanged."""
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    install_router_updates(optimizer, model)
    before = biases(model)
    model.eval()
    ids = batch()
    model(ids, labels=ids).loss.backward()
    optimizer.step()
    assert all(torch.equal(old, new) for old, new in zip(before, biases(model)))


def test_bias_changes_in_the_step_hook_not_in_forward():
    """A training forward and backward alone leave the bias unchanged; the optimizer step changes it."""
    model = tiny_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    install_router_updates(optimizer, model)
    before = biases(model)
    ids = batch()
    model(ids, labels=ids).loss.backward()
    assert all(torch.equal(old, new) for old, new in zip(before, biases(model)))
    optimizer.step()
    assert all(not torch.equal(old, new) for old, new in zip(before, biases(model)))


def test_bias_stays_fp32_under_bf16_autocast():
    """A bf16-autocast training step updates the bias in fp32 by the same amount as an fp32 step."""
    model = tiny_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    install_router_updates(optimizer, model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = train_step(model, optimizer, batch())
    for stats, bias in zip(out.router_stats, biases(model)):
        load_E = stats.tokens_per_expert.float()
        assert bias.dtype == torch.float32
        assert torch.equal(bias, GAMMA * torch.sign(load_E.mean() - load_E))


def test_activation_checkpointing_leaves_bias_update_unchanged():
    """Recomputed forwards count every token twice, which the sign rule ignores: same bias as without."""
    results = []
    for checkpointing in (False, True):
        model = apply_activation_checkpointing(tiny_model().train(), checkpointing)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        install_router_updates(optimizer, model)
        train_step(model, optimizer, batch())
        results.append(biases(model))
    assert all(torch.equal(plain, recomputed) for plain, recomputed in zip(*results))
