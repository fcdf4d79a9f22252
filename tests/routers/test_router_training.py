"""Every router can be trained: gradients reach its gate, and a tiny model with it overfits one batch."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.routers import ROUTERS

TOP_K = {"switch": 1, "gshard": 2}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are op-overhead bound; one thread avoids oversubscription slowdowns on small CI runners."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(name: str) -> DeepSeekMoEForCausalLM:
    """2 MoE layers, no shared expert: every FFN output goes through the router under test."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, hidden_size=64, n_layers=2, n_heads=4, max_seq_len=16,
                         moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=0,
                         n_activated_experts=TOP_K.get(name, 2), router=name)
    return DeepSeekMoEForCausalLM(config).train()


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1))
    return tokens[:, :-1], tokens[:, 1:]


@pytest.mark.parametrize("name", ROUTERS.having(lambda traits: traits.has_gate))
def test_gate_receives_gradient(name):
    """The LM loss backpropagates into every MoE layer's router gate weight."""
    model = tiny_model(name)
    input_ids, labels = fixed_batch()
    model(input_ids, labels=labels).loss.backward()
    for block in model.layers:
        assert block.ffn.router.weight.grad is not None and block.ffn.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_overfits_one_batch(name):
    """30 AdamW steps (lr 3e-3) on one fixed batch bring the LM loss below half its initial value."""
    model = tiny_model(name)
    input_ids, labels = fixed_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model(input_ids, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.lm_loss.item())
    assert losses[-1] < 0.5 * losses[0]
