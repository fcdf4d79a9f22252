"""The MoE layer: shared plus weighted routed experts (DeepSeekMoE Eq. 9-11), drops, losses, bf16 autocast."""

import pytest
import torch
import torch.nn.functional as F

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.model import MoE
from dsmoe.model.init import init_weights

HIDDEN, WIDTH, N_EXPERTS = 16, 8, 4


def moe_layer(router: str = "softmax_topk", **changes) -> MoE:
    values = dict(vocab_size=64, hidden_size=HIDDEN, n_layers=1, n_heads=2, max_seq_len=8,
                  moe_intermediate_size=WIDTH, n_routed_experts=N_EXPERTS, n_activated_experts=2, router=router)
    torch.manual_seed(0)
    layer = MoE(ModelConfig(**{**values, **changes}))
    init_weights(layer, std=0.3)
    return layer


def inputs(batch: int = 2, seq_len: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x_BLD = torch.randn(batch, seq_len, HIDDEN, generator=generator)
    return x_BLD, torch.randint(0, 64, (batch, seq_len), generator=generator)


def expert(layer: MoE, e: int, x_D: torch.Tensor) -> torch.Tensor:
    gate_D, up_D = (layer.experts.gate_up_proj[e] @ x_D).chunk(2)
    return layer.experts.down_proj[e] @ (F.silu(gate_D) * up_D)


@torch.no_grad()
def test_output_is_shared_plus_weighted_routed_experts():
    """h_t = shared(u_t) + sum over the top-k experts of softmax prob * expert(u_t), token by token."""
    layer = moe_layer().eval()
    x_BLD, ids_BL = inputs()
    out_BLD, _, _ = layer(x_BLD, ids_BL)
    for x_D, out_D in zip(x_BLD.reshape(-1, HIDDEN), out_BLD.reshape(-1, HIDDEN)):
        probs_E = (layer.router.weight @ x_D).softmax(-1)
        top = probs_E.topk(2)
        expected = layer.shared_experts(x_D) + sum(p * expert(layer, e, x_D) for p, e in zip(top.values, top.indices))
        torch.testing.assert_close(out_D, expected, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_swiglu_limit_clamps_the_shared_and_routed_experts_not_the_dense_ffn():
    """The shared experts compute down(silu(min(gate, L)) * clamp(up, -L, L)) (DeepSeek-V4's swiglu_limit), the routed
    experts get the same limit (their kernels: tests/kernels/test_clamped_swiglu.py), and a dense layer has none."""
    layer = moe_layer(swiglu_limit=0.5).eval()
    x_BLD, _ = inputs()
    shared = layer.shared_experts
    gate_BLF, up_BLF = shared.gate_proj(x_BLD), shared.up_proj(x_BLD)
    assert (gate_BLF > 0.5).any() and (up_BLF.abs() > 0.5).any()
    expected_BLD = shared.down_proj(F.silu(gate_BLF.clamp(max=0.5)) * up_BLF.clamp(min=-0.5, max=0.5))
    torch.testing.assert_close(shared(x_BLD), expected_BLD)
    assert layer.experts.swiglu_limit == 0.5
    model = DeepSeekMoEForCausalLM(ModelConfig(vocab_size=64, hidden_size=HIDDEN, n_layers=2, n_heads=2,
                                               first_k_dense_replace=1, swiglu_limit=0.5))
    assert model.layers[0].ffn.limit is None and model.layers[1].ffn.shared_experts.limit == 0.5


@torch.no_grad()
def test_soft_moe_output_matches_per_slot_reference():
    """Soft MoE: slot c = sum_t D[t, c] x_t; expert c // p processes slot c; y_t = sum_c C[t, c] slot_out_c."""
    layer = moe_layer("soft_moe", n_shared_experts=0).eval()
    x_BLD, ids_BL = inputs()
    out_BLD, _, _ = layer(x_BLD, ids_BL)
    slots_per_expert = layer.router.config.slots_per_expert
    for x_LD, out_LD in zip(x_BLD, out_BLD):
        routing = layer.router(x_LD, ids_BL[0], 1)
        dispatch_LC, combine_LC = routing.dispatch_BLX[0], routing.combine_BLX[0]
        slot_out = [expert(layer, c // slots_per_expert, dispatch_LC[:, c] @ x_LD) for c in range(dispatch_LC.shape[1])]
        torch.testing.assert_close(out_LD, combine_LC @ torch.stack(slot_out), rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_dropped_tokens_get_only_the_shared_experts():
    """Switch with a tiny capacity: a token whose only choice was dropped outputs shared(u_t) alone."""
    layer = moe_layer("switch", n_activated_experts=1, capacity_factor=0.25).eval()
    x_BLD, ids_BL = inputs()
    out_BLD, _, stats = layer(x_BLD, ids_BL)
    routing = layer.router(x_BLD.reshape(-1, HIDDEN), ids_BL.reshape(-1), 2)
    dropped = torch.ones(16, dtype=torch.bool)
    dropped[routing.token_index_S] = False
    assert dropped.sum().item() == stats.dropped_tokens.item() > 0
    x_TD, out_TD = x_BLD.reshape(-1, HIDDEN), out_BLD.reshape(-1, HIDDEN)
    torch.testing.assert_close(out_TD[dropped], layer.shared_experts(x_TD[dropped]))


def test_aux_losses_only_in_training():
    """The layer returns its balance loss in training mode and no aux losses in eval mode."""
    layer = moe_layer(aux_loss_alpha=0.01, z_loss_coef=1e-3)
    x_BLD, ids_BL = inputs()
    _, train_aux, _ = layer.train()(x_BLD, ids_BL)
    _, eval_aux, _ = layer.eval()(x_BLD, ids_BL)
    assert set(train_aux) == {"expert_balance", "z_loss"} and eval_aux == {}


@pytest.mark.parametrize("expert_kernel", ["grouped_mm", "loop"])
@pytest.mark.parametrize("router", ["softmax_topk", "soft_moe"])
def test_bf16_autocast_runs_on_cpu_and_tracks_fp32(expert_kernel, router):
    """Under CPU bf16 autocast the layer runs forward and backward, close to its fp32 output."""
    if expert_kernel == "grouped_mm" and not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch._grouped_mm is unavailable")
    layer = moe_layer(router, expert_kernel=expert_kernel).eval()
    x_BLD, ids_BL = inputs()
    with torch.no_grad():
        reference, _, _ = layer(x_BLD, ids_BL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_BLD, _, _ = layer(x_BLD, ids_BL)
    out_BLD.float().sum().backward()
    assert out_BLD.dtype == torch.bfloat16
    assert ((out_BLD.float() - reference).norm() / reference.norm()).item() < 2e-2
    assert all(torch.isfinite(p.grad).all() and p.grad.dtype == torch.float32
               for p in layer.parameters() if p.grad is not None)
