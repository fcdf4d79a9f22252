"""The token-dispatcher seam of the MoE layer: the local dispatcher is the fused fast path, bit for bit, and a
dispatcher swapped in from outside (here one that materialises the permuted tokens, as an all-to-all would)
computes the same layer."""

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.kernels import fused_grouped_experts
from dsmoe.model import MoE
from dsmoe.model.moe import ExpertBatch, LocalDispatcher, TokenDispatcher
from dsmoe.model.init import init_weights

pytestmark = pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm is unavailable")

HIDDEN, WIDTH, N_EXPERTS = 16, 8, 8


def moe_layer(router: str = "softmax_topk", **changes) -> MoE:
    values = dict(vocab_size=64, hidden_size=HIDDEN, n_layers=1, n_heads=2, max_seq_len=16, moe_intermediate_size=WIDTH,
                  n_routed_experts=N_EXPERTS, n_activated_experts=2, n_shared_experts=1, router=router,
                  expert_kernel="grouped_mm")
    torch.manual_seed(0)
    layer = MoE(ModelConfig(**{**values, **changes}))
    init_weights(layer, std=0.3)
    return layer


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, 16, HIDDEN, generator=generator), torch.randint(0, 64, (3, 16), generator=generator)


def output_and_grads(layer: MoE, x_BLD: torch.Tensor, ids_BL: torch.Tensor) -> list[torch.Tensor]:
    x_BLD = x_BLD.clone().requires_grad_(True)
    out_BLD = layer(x_BLD, ids_BL)[0]
    out_BLD.pow(2).sum().backward()
    return [out_BLD.detach(), x_BLD.grad, *(p.grad for p in layer.parameters())]


def fused_path_by_hand(layer: MoE, x_BLD: torch.Tensor, ids_BL: torch.Tensor) -> torch.Tensor:
    """What the layer computed before it had a dispatcher: sort the pairs, one fused op, plus the shared experts."""
    x_TD = x_BLD.reshape(-1, HIDDEN)
    routing = layer.router(x_TD, ids_BL.reshape(-1), x_BLD.shape[0])
    order_S = torch.argsort(routing.expert_index_S, stable=True)
    counts_E = torch.bincount(routing.expert_index_S, minlength=N_EXPERTS)
    offsets_E = torch.cumsum(counts_E, 0).to(torch.int32)
    routed_TD = fused_grouped_experts(x_TD, routing.token_index_S[order_S], offsets_E, routing.weight_S[order_S],
                                      layer.experts.gate_up_proj, layer.experts.down_proj)
    return routed_TD.reshape(x_BLD.shape) + layer.shared_output(x_BLD)


def test_the_layer_uses_the_local_dispatcher_unless_told_otherwise():
    assert type(moe_layer().dispatcher) is LocalDispatcher


@torch.no_grad()
def test_local_dispatch_is_the_fused_path_bitwise():
    layer = moe_layer()
    x_BLD, ids_BL = inputs()
    assert torch.equal(layer(x_BLD, ids_BL)[0], fused_path_by_hand(layer, x_BLD, ids_BL))


def test_local_dispatch_gradients_are_the_fused_path_bitwise():
    layer, by_hand = moe_layer(), moe_layer()
    x_BLD, ids_BL = inputs()
    seam = output_and_grads(layer, x_BLD, ids_BL)
    leaf = x_BLD.clone().requires_grad_(True)
    fused_path_by_hand(by_hand, leaf, ids_BL).pow(2).sum().backward()
    reference = [fused_path_by_hand(by_hand, x_BLD, ids_BL).detach(), leaf.grad, *(p.grad for p in by_hand.parameters())]
    for a, b in zip(seam, reference):
        assert torch.equal(a, b)


class MaterialisingDispatcher(TokenDispatcher):
    """Copies every pair's token into expert order (what an all-to-all sends), lets the experts see one row per
    pair, and sums the rows back into their tokens in combine (what the return all-to-all and un-permute do)."""

    def __init__(self, n_experts: int):
        super().__init__(n_experts)
        self.calls = 0

    def dispatch(self, x_TD, routing):
        self.calls += 1
        local = ExpertBatch.from_pairs(x_TD, routing.token_index_S, routing.expert_index_S, routing.weight_S,
                                       self.n_experts)
        permuted_SD = x_TD.index_select(0, local.row_index_S)
        self.n_tokens, self.token_index_S = x_TD.shape[0], local.row_index_S
        return ExpertBatch(permuted_SD, torch.arange(permuted_SD.shape[0]), local.weight_S, local.offsets_E)

    def combine(self, rows_RD, batch, routing):
        return rows_RD.new_zeros(self.n_tokens, rows_RD.shape[1]).index_add_(0, self.token_index_S, rows_RD)


@pytest.mark.parametrize("router", ["softmax_topk", "sigmoid_topk", "hash"])
def test_a_dispatcher_set_from_outside_computes_the_same_layer(router):
    local, swapped = moe_layer(router), moe_layer(router)
    swapped.dispatcher = MaterialisingDispatcher(N_EXPERTS)
    x_BLD, ids_BL = inputs()
    for a, b in zip(output_and_grads(swapped, x_BLD, ids_BL), output_and_grads(local, x_BLD, ids_BL)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert swapped.dispatcher.calls == 1
