"""Forward+backward wall time of one MoE FFN layer against a dense SwiGLU with the same activated FLOPs.

Every layout activates (top_k + n_shared) * expert_width = dense width per token, so a perfect
MoE kernel would tie the dense baseline. Implementations run interleaved round-robin in one
process (the machine is noisy), all on identical weights, so all MoE layers route identically.

    python benchmarks/moe_layer.py                    # full run: T=4096, hidden 512, fp32, CPU
    python benchmarks/moe_layer.py --quick            # smoke run
    python benchmarks/moe_layer.py --layouts e16k2 --impls dense dsmoe-grouped_mm hf-grouped_mm
    python benchmarks/moe_layer.py --device cuda --dtype bfloat16 --tokens 16384 --hidden 2048 --memory   # a GPU
"""

from __future__ import annotations

import argparse
import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from dsmoe import ModelConfig
from dsmoe.model.init import init_weights
from dsmoe.model.moe import MoE, SwiGLU
from dsmoe.runtime import unmap_freed_memory
from peak_memory import in_subprocess, peak_rss_growth_mib
from results import print_result, transformers_label, transformers_missing
from timing import device_name, median, setup_cpu, time_round_robin

ROUTED_SCALING_FACTOR = 2.5  # DeepSeek-V3's, given to both libraries
INIT_STD = 0.02
CHECK_RTOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}  # bf16 keeps 8 mantissa bits: sums differ by ~1e-2
warnings.filterwarnings("ignore", "Initializing zero-element tensors")  # transformers' zero-width shared MLP


@dataclass(frozen=True)
class Layout:
    n_routed_experts: int
    top_k: int
    expert_width: int
    n_shared_experts: int = 0

    @property
    def dense_width(self) -> int:
        """The dense SwiGLU width with the same activated FLOPs per token."""
        return (self.top_k + self.n_shared_experts) * self.expert_width


LAYOUTS = {
    "e16k2": Layout(16, 2, 1024),
    "e64k8": Layout(64, 8, 256),
    "e128k16": Layout(128, 16, 128),
    "e256k32": Layout(256, 32, 64),
    "s1e63k7": Layout(63, 7, 256, n_shared_experts=1),
}
IMPLS = ("dense", "dsmoe-grouped_mm", "dsmoe-loop", "hf-grouped_mm", "hf-eager")
SLOW_IMPLS = {"hf-eager": ("e16k2", "e64k8")}  # a python loop over experts: only on the few-expert layouts


@dataclass
class Impl:
    name: str
    module: nn.Module
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_BLD, token_ids_BL) -> y_BLD


def dsmoe_layer(layout: Layout, hidden: int, expert_kernel: str) -> MoE:
    """DeepSeek-V3-style routing (sigmoid, renormalised top-k, scaled) to compare like with like."""
    config = ModelConfig(hidden_size=hidden, n_routed_experts=layout.n_routed_experts,
                         n_activated_experts=layout.top_k, moe_intermediate_size=layout.expert_width,
                         n_shared_experts=layout.n_shared_experts, router="sigmoid_topk", norm_topk_prob=True,
                         routed_scaling_factor=ROUTED_SCALING_FACTOR, aux_loss_alpha=0.0, expert_kernel=expert_kernel)
    return MoE(config)


def hf_layer(layout: Layout, hidden: int, experts_implementation: str) -> nn.Module:
    """transformers' DeepseekV3MoE block; n_shared_experts=0 builds a zero-width shared MLP (adds zeros, costs
    ~nothing)."""
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    config = DeepseekV3Config(hidden_size=hidden, n_routed_experts=layout.n_routed_experts,
                              num_experts_per_tok=layout.top_k, moe_intermediate_size=layout.expert_width,
                              n_shared_experts=layout.n_shared_experts, n_group=1, topk_group=1,
                              norm_topk_prob=True, routed_scaling_factor=ROUTED_SCALING_FACTOR,
                              experts_implementation=experts_implementation)
    return DeepseekV3MoE(config)


@torch.no_grad()
def copy_to_hf(source: MoE, target: nn.Module) -> None:
    """Same tensor layouts: gate_up_proj [E, 2F, D] (gate rows first), down_proj [E, D, F], gate [E, D]."""
    target.gate.weight.copy_(source.router.weight)
    target.experts.gate_up_proj.copy_(source.experts.gate_up_proj)
    target.experts.down_proj.copy_(source.experts.down_proj)
    if source.shared_experts is not None:
        target.shared_experts.load_state_dict(source.shared_experts.state_dict())


def build_impls(layout: Layout, hidden: int, names: list[str], device: torch.device = torch.device("cpu"),
                dtype: torch.dtype = torch.float32) -> tuple[dict[str, Impl], Impl]:
    """The requested implementations, plus the dsmoe loop reference, all on the same routed weights."""
    reference = dsmoe_layer(layout, hidden, "loop")
    init_weights(reference, INIT_STD)  # normal init of the router too: zero gates would make routing degenerate
    reference.to(device, dtype)
    impls = {}
    for name in names:
        if name == "dense":
            module = SwiGLU(hidden, layout.dense_width)
            init_weights(module, INIT_STD)
            module.to(device, dtype)
            impls[name] = Impl(name, module, lambda x, ids, m=module: m(x))
        elif name.startswith("dsmoe-"):
            module = dsmoe_layer(layout, hidden, name.removeprefix("dsmoe-")).to(device, dtype)
            module.load_state_dict(reference.state_dict())
            impls[name] = Impl(name, module, lambda x, ids, m=module: m(x, ids)[0])
        else:
            module = hf_layer(layout, hidden, name.removeprefix("hf-")).to(device, dtype)
            copy_to_hf(reference, module)
            impls[name] = Impl(name, module, lambda x, ids, m=module: m(x))
    return impls, Impl("reference", reference, lambda x, ids: reference(x, ids)[0])


def forward_backward(impl: Impl, x: torch.Tensor, ids: torch.Tensor, grad: torch.Tensor) -> None:
    impl.module.zero_grad(set_to_none=True)
    x.grad = None
    impl.run(x, ids).backward(grad)


def check_against_reference(impls: dict[str, Impl], reference: Impl, x: torch.Tensor, ids: torch.Tensor) -> None:
    """Every MoE implementation must match the loop reference (same weights) to CHECK_RTOL."""
    with torch.no_grad():
        expected = reference.run(x, ids)
        for impl in impls.values():
            if impl.name in ("dense", "dsmoe-loop"):  # dense has other weights; the loop is the reference
                continue
            abs_diff = (impl.run(x, ids) - expected).abs().max().item()
            rel_diff = abs_diff / expected.abs().max().item()
            print(f"  check {impl.name:<16} vs dsmoe loop: max abs diff {abs_diff:.2e}, max rel diff {rel_diff:.2e}")
            assert rel_diff < CHECK_RTOL[x.dtype], f"{impl.name} differs from the reference by {rel_diff:.2e} (relative)"


def peak_memory_child(args: argparse.Namespace) -> None:
    """--peak-of LAYOUT IMPL: in this fresh process, print the peak memory of one forward+backward beyond the
    parameter gradients it must allocate (those scale with total, not activated, parameters)."""
    layout_name, impl_name = args.peak_of
    impls, _ = build_impls(LAYOUTS[layout_name], args.hidden, [impl_name])
    x, ids, grad = layer_inputs(args)
    peak = peak_rss_growth_mib(lambda: impls[impl_name].run(x, ids).backward(grad))
    print(peak - sum(p.numel() * p.element_size() for p in impls[impl_name].module.parameters()) / 2**20)


def peak_memory_mib(layout_name: str, impl_name: str, args: argparse.Namespace) -> float:
    return in_subprocess(__file__, "--peak-of", layout_name, impl_name, "--tokens", str(args.tokens),
                         "--hidden", str(args.hidden))


def layer_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    x = torch.randn(1, args.tokens, args.hidden, device=device, dtype=dtype, requires_grad=True)
    ids = torch.zeros(1, args.tokens, dtype=torch.long, device=device)  # token ids only matter to the hash router
    return x, ids, torch.randn(1, args.tokens, args.hidden, device=device, dtype=dtype)


def gpu_peak_memory_mib(impl: Impl, x: torch.Tensor, ids: torch.Tensor, grad: torch.Tensor) -> float:
    """On a GPU: the allocator's peak over one forward+backward beyond what was allocated before, less the
    parameter gradients (as peak_memory_child measures on the CPU)."""
    forward_backward(impl, x, ids, grad)  # warm: workspaces and gradient buffers exist before the measurement
    impl.module.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    forward_backward(impl, x, ids, grad)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    return (peak - sum(p.numel() * p.element_size() for p in impl.module.parameters())) / 2**20


def saved_activation_mib(impl: Impl, x: torch.Tensor, ids: torch.Tensor) -> float:
    """MiB of distinct non-parameter tensors autograd saves for backward (a proxy for activation memory)."""
    excluded = {p.untyped_storage().data_ptr() for p in impl.module.parameters()} | {x.untyped_storage().data_ptr()}
    saved = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        impl.run(x, ids)
    return sum(saved.values()) / 2**20


def benchmark_layout(name: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Check, time and print one layout; returns each implementation's median ms, its ratio to the dense median,
    and (with --memory) its peak activation MiB."""
    layout = LAYOUTS[name]
    names = [i for i in args.impls if i not in SLOW_IMPLS or name in SLOW_IMPLS[i] or args.all_eager]
    impls, reference = build_impls(layout, args.hidden, names, torch.device(args.device), getattr(torch, args.dtype))
    print(f"\n== {name}: {layout.n_routed_experts} routed top-{layout.top_k} + {layout.n_shared_experts} shared, "
          f"expert width {layout.expert_width}, dense width {layout.dense_width}, T={args.tokens}, D={args.hidden}")
    x, ids, grad = layer_inputs(args)
    check_against_reference(impls, reference, x, ids)
    runs = {impl_name: functools.partial(forward_backward, impl, x, ids, grad) for impl_name, impl in impls.items()}
    times = time_round_robin(runs, args.warmup, args.repeats, args.device)
    peaks = {}
    if args.memory and args.device.startswith("cuda"):
        peaks = {impl_name: gpu_peak_memory_mib(impl, x, ids, grad) for impl_name, impl in impls.items()}
    elif args.memory:
        peaks = {impl_name: peak_memory_mib(name, impl_name, args) for impl_name in impls}
    ratios = print_layout_table(times, impls, x, ids, peaks)
    return {"median_ms": {impl_name: median(samples) * 1e3 for impl_name, samples in times.items()},
            "ratio_to_dense": ratios, "peak_activation_mib": peaks}


def print_layout_table(times: dict[str, list[float]], impls: dict[str, Impl], x, ids,
                       peaks: dict[str, float]) -> dict[str, float]:
    """One row per implementation; returns each one's median-time ratio to the dense median."""
    dense = times.get("dense", [float("nan")])
    print(f"  {'impl':<16} {'median ms':>10} {'min ms':>9} {'median/dense':>13} {'min/dense':>10} {'saved MiB':>10}"
          f" {'peak act MiB':>13} {'peak/dense':>10}")
    ratios = {}
    for name, samples in times.items():
        ratios[name] = median(samples) / median(dense)
        memory = saved_activation_mib(impls[name], x, ids)
        print(f"  {name:<16} {median(samples) * 1e3:>10.1f} {min(samples) * 1e3:>9.1f} "
              f"{ratios[name]:>12.2f}x {min(samples) / min(dense):>9.2f}x {memory:>10.1f}"
              f" {peaks.get(name, float('nan')):>13.1f} {peaks.get(name, float('nan')) / peaks.get('dense', float('nan')):>9.2f}x")
    return ratios


def print_summary(ratios: dict[str, dict[str, float]], impls: list[str]) -> None:
    print("\n== median time / dense median (lower is better; 1.00 = as fast as the equal-FLOP dense MLP)")
    print(f"  {'layout':<9}" + "".join(f"{name:>18}" for name in impls))
    for layout, row in ratios.items():
        print(f"  {layout:<9}" + "".join(f"{row[name]:>17.2f}x" if name in row else f"{'-':>18}" for name in impls))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per step (one sequence)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--all-eager", action="store_true", help="run hf-eager on every layout, not only the smallest")
    parser.add_argument("--quick", action="store_true", help="smoke run: T=256, 1 warm-up, 2 repeats")
    parser.add_argument("--memory", action="store_true", help="also measure each implementation's peak activation "
                        "memory: peak RSS growth of one forward+backward in a fresh subprocess, less the parameter "
                        "gradients")
    parser.add_argument("--system-allocator", action="store_true", help="leave glibc's allocator as it is")
    parser.add_argument("--peak-of", nargs=2, metavar=("LAYOUT", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.warmup, args.repeats = 256, 1, 2
    return args


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    if args.peak_of:  # a child measuring one implementation's peak memory: RSS must follow live tensors
        setup_cpu(system_allocator=True)
        unmap_freed_memory()
        return peak_memory_child(args)
    missing = transformers_missing()
    skipped = {name: missing for name in args.impls if name.startswith("hf-") and missing}
    args.impls = [name for name in args.impls if name not in skipped]
    print(f"{setup_cpu(args.system_allocator)}, {transformers_label()}, {args.dtype} {device_name(args.device)}")
    results = {name: benchmark_layout(name, args) for name in args.layouts}
    print_summary({name: result["ratio_to_dense"] for name, result in results.items()}, args.impls)
    print_result("moe_layer", device=device_name(args.device), dtype=args.dtype, tokens=args.tokens,
                 hidden=args.hidden, layouts=results, skipped=skipped)


if __name__ == "__main__":
    main()
