"""DeepSeek-V4's MoE layer against transformers' DeepseekV4SparseMoeBlock, the same weights copied over, in fp32:
the plain layer (router="sqrtsoftplus_topk" with its bias) and a hash layer (n_hash_layers, the token-id table), both
with the clamped SwiGLU (swiglu_limit) in the routed experts and the shared expert, on either expert kernel. Outputs
agree to max abs difference <= 1e-5; the gradients of the fused op's clamped backward agree with transformers'
autograd. Full V4 checkpoints (compressed attention, hyper-connections) are not converted (docs/INTEROP.md)."""

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.kernels import use_grouped_mm
from dsmoe.model import MoE
from model.hf_reference import TOLERANCE, max_abs_diff, randomize, transformers_module

VOCAB, HIDDEN, WIDTH, EXPERTS, TOP_K, SEQ = 64, 32, 16, 8, 2, 7
LIMIT, SCALE = 2.0, 1.5  # projections here have std ~1.7: the limit clamps about a quarter of the gate and up values
LAYERS = {"hash": 0, "plain": 1}  # mlp_layer_types = ["hash_moe", "moe"]
KERNELS = ["loop", "grouped_mm"]


def reference_block(layer_idx: int):
    """transformers' DeepseekV4SparseMoeBlock of layer `layer_idx`, randomised: matrices N(0, 0.3^2), a random bias
    and a random table of distinct experts per token id."""
    modeling = transformers_module("deepseek_v4.modeling_deepseek_v4")
    config = transformers_module("deepseek_v4.configuration_deepseek_v4").DeepseekV4Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, moe_intermediate_size=WIDTH, n_routed_experts=EXPERTS,
        num_experts_per_tok=TOP_K, num_hidden_layers=2, mlp_layer_types=["hash_moe", "moe"], swiglu_limit=LIMIT,
        routed_scaling_factor=SCALE, experts_implementation="eager")
    block = randomize(modeling.DeepseekV4SparseMoeBlock(config, layer_idx)).eval()
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        if block.is_hash:
            block.gate.tid2eid.copy_(torch.rand(VOCAB, EXPERTS, generator=generator).topk(TOP_K, dim=-1).indices)
        else:
            block.gate.e_score_correction_bias.copy_(torch.randn(EXPERTS, generator=generator) * 0.1)
    return block


def dsmoe_layer(reference, layer_idx: int, expert_kernel: str) -> MoE:
    config = ModelConfig(vocab_size=VOCAB, hidden_size=HIDDEN, n_layers=2, n_heads=2, moe_intermediate_size=WIDTH,
                         n_routed_experts=EXPERTS, n_activated_experts=TOP_K, n_shared_experts=1,
                         router="sqrtsoftplus_topk", n_hash_layers=1, swiglu_limit=LIMIT, routed_scaling_factor=SCALE,
                         expert_kernel=expert_kernel)
    layer = MoE(config, layer_idx).eval()
    renames = {"gate.e_score_correction_bias": "router.expert_bias"}
    layer.load_state_dict({renames.get(name, name.replace("gate.", "router.", 1)): tensor
                           for name, tensor in reference.state_dict().items()})
    return layer


def reference_output(reference, x_BLD: torch.Tensor, ids_BL: torch.Tensor) -> torch.Tensor:
    return reference(x_BLD, ids_BL) if reference.is_hash else reference(x_BLD)  # only a hash block reads token ids


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, SEQ, HIDDEN, generator=generator), torch.randint(0, VOCAB, (3, SEQ), generator=generator)


def skip_unless_available(expert_kernel: str) -> None:
    gate_up_EFD = torch.zeros(EXPERTS, 2 * WIDTH, HIDDEN)
    if expert_kernel == "grouped_mm" and not use_grouped_mm("auto", torch.zeros(1, HIDDEN), gate_up_EFD):
        pytest.skip("torch._grouped_mm does not run here")


def test_the_limit_clamps_many_values_here():
    """The parity below would hold without a clamp if no value reached the limit: here a good share does."""
    reference = reference_block(LAYERS["plain"])
    h_TX = inputs()[0].reshape(-1, HIDDEN) @ reference.experts.gate_up_proj.detach().flatten(0, 1).T  # X = E * 2F
    assert (h_TX.abs() > LIMIT).float().mean() > 0.2


@pytest.mark.parametrize("expert_kernel", KERNELS)
@pytest.mark.parametrize("layer", LAYERS)
@torch.no_grad()
def test_moe_layer_equals_transformers_deepseek_v4_block(layer, expert_kernel):
    skip_unless_available(expert_kernel)
    reference = reference_block(LAYERS[layer])
    moe = dsmoe_layer(reference, LAYERS[layer], expert_kernel)
    x_BLD, ids_BL = inputs()
    out_BLD, aux_losses, _ = moe(x_BLD, ids_BL)
    expected_BLD = reference_output(reference, x_BLD.clone(), ids_BL)
    assert max_abs_diff(out_BLD, expected_BLD) <= TOLERANCE and aux_losses == {}


@pytest.mark.parametrize("layer", LAYERS)
def test_fused_clamped_backward_equals_transformers_autograd(layer):
    """Gradients of the input, the gate and the expert weights (through the clamps of routed and shared experts)."""
    skip_unless_available("grouped_mm")
    reference = reference_block(LAYERS[layer])
    moe = dsmoe_layer(reference, LAYERS[layer], "grouped_mm")
    x_BLD, ids_BL = inputs()
    grad_BLD = torch.randn(x_BLD.shape, generator=torch.Generator().manual_seed(3))
    ours_x, theirs_x = x_BLD.clone().requires_grad_(True), x_BLD.clone().requires_grad_(True)
    (moe(ours_x, ids_BL)[0] * grad_BLD).sum().backward()
    (reference_output(reference, theirs_x, ids_BL) * grad_BLD).sum().backward()
    pairs = [(ours_x.grad, theirs_x.grad), (moe.router.weight.grad, reference.gate.weight.grad),
             (moe.experts.gate_up_proj.grad, reference.experts.gate_up_proj.grad),
             (moe.experts.down_proj.grad, reference.experts.down_proj.grad),
             (moe.shared_experts.up_proj.weight.grad, reference.shared_experts.up_proj.weight.grad)]
    for ours, theirs in pairs:
        assert max_abs_diff(ours, theirs) <= TOLERANCE * max(1.0, theirs.abs().max().item())
