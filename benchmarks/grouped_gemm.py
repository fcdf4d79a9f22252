"""Grouped GEMM throughput against one dense GEMM of the same FLOPs: what fine-grained experts lose to being many
small matrices. For each layout, the K-fold token copies S = T * K are split over E experts by a random routing, and
the expert projections run as torch._grouped_mm ([S, D] x [E, D, 2F] for gate/up, [S, F] x [E, F, D] for down); the
dense twin multiplies the same [S, D] rows by one [D, 2F] (then [F, D]) matrix, so both do 2 * S * D * 2F FLOPs.

    python benchmarks/grouped_gemm.py --device cuda --dtype bfloat16     # on a GPU (the target: >= 70 % of dense)
    python benchmarks/grouped_gemm.py --quick                            # CPU smoke run
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from dsmoe.kernels import sort_by_expert
from results import print_result
from timing import device_name, median, time_round_robin


@dataclass(frozen=True)
class GemmLayout:
    hidden: int
    expert_width: int
    n_experts: int
    top_k: int


LAYOUTS = {  # the paper's and DeepSeek-V2/V3's expert shapes, and the layer benchmark's finer splits at hidden 2048
    "deepseekmoe-16b": GemmLayout(2048, 1408, 64, 6),
    "deepseek-v3": GemmLayout(7168, 2048, 256, 8),
    "e16k2-d2048": GemmLayout(2048, 4096, 16, 2),
    "e64k8-d2048": GemmLayout(2048, 1024, 64, 8),
    "e256k32-d2048": GemmLayout(2048, 256, 256, 32),
    "smoke": GemmLayout(256, 128, 16, 4),  # --quick, on a CPU
}
GPU_LAYOUTS = [name for name in LAYOUTS if name != "smoke"]


def routed_offsets(tokens: int, layout: GemmLayout, device: torch.device) -> torch.Tensor:
    """int32 cumulative rows per expert of a random top-k routing (distinct experts per token)."""
    scores_TE = torch.rand(tokens, layout.n_experts, device=device)
    expert_index_S = scores_TE.topk(layout.top_k, dim=-1).indices.reshape(-1)
    return sort_by_expert(expert_index_S, layout.n_experts)[1]


def layout_runs(layout: GemmLayout, tokens: int, device: torch.device, dtype: torch.dtype) -> dict[str, object]:
    rows = tokens * layout.top_k
    d, f2, f = layout.hidden, 2 * layout.expert_width, layout.expert_width
    offsets_E = routed_offsets(tokens, layout, device)
    x_SD, act_SF = torch.randn(rows, d, device=device, dtype=dtype), torch.randn(rows, f, device=device, dtype=dtype)
    gate_up_EDF2 = torch.randn(layout.n_experts, d, f2, device=device, dtype=dtype) * d ** -0.5
    down_EFD = torch.randn(layout.n_experts, f, d, device=device, dtype=dtype) * f ** -0.5
    gate_up_DF2, down_FD = gate_up_EDF2[0].contiguous(), down_EFD[0].contiguous()
    return {
        "grouped gate_up": lambda: torch._grouped_mm(x_SD, gate_up_EDF2, offs=offsets_E),
        "dense gate_up": lambda: torch.mm(x_SD, gate_up_DF2),
        "grouped down": lambda: torch._grouped_mm(act_SF, down_EFD, offs=offsets_E),
        "dense down": lambda: torch.mm(act_SF, down_FD),
    }, {"gate_up": 2 * rows * d * f2, "down": 2 * rows * f * d}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--tokens", type=int, default=16384, help="tokens T; the GEMMs have T * top_k rows")
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=GPU_LAYOUTS)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the small 'smoke' layout, 256 tokens, fp32, 1 warm-up, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.layouts, args.tokens, args.dtype, args.warmup, args.repeats = ["smoke"], 256, "float32", 1, 2
    return args


def main() -> None:
    args = parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {device_name(device)}, {args.dtype}, T={args.tokens}")
    print(f"  {'layout':<16} {'projection':<8} {'grouped TFLOP/s':>16} {'dense TFLOP/s':>14} {'grouped / dense':>16}")
    results = {}
    for layout_name in args.layouts:
        runs, flops = layout_runs(LAYOUTS[layout_name], args.tokens, device, dtype)
        times = time_round_robin(runs, args.warmup, args.repeats, device)
        results[layout_name] = layout_rates(times, flops)
        for projection, rates in results[layout_name].items():
            print(f"  {layout_name:<16} {projection:<8} {rates['grouped_tflops']:>16.1f} {rates['dense_tflops']:>14.1f}"
                  f" {rates['ratio']:>15.0%}")
        del runs
    print_result("grouped_gemm", device=device_name(device), dtype=args.dtype, tokens=args.tokens,
                 n_experts={name: LAYOUTS[name].n_experts for name in args.layouts}, layouts=results)


def layout_rates(times: dict[str, list[float]], flops: dict[str, int]) -> dict[str, dict[str, float]]:
    """TFLOP/s of the grouped and the dense GEMMs per projection, and of both projections together ("both": all
    their FLOPs over the sum of their median times), with grouped / dense."""
    seconds = {kind: {projection: median(times[f"{kind} {projection}"]) for projection in flops}
               for kind in ("grouped", "dense")}
    for kind_seconds in seconds.values():
        kind_seconds["both"] = sum(kind_seconds.values())
    rates = {}
    for projection, work in {**flops, "both": sum(flops.values())}.items():
        grouped, dense = (work / seconds[kind][projection] / 1e12 for kind in ("grouped", "dense"))
        rates[projection] = {"grouped_tflops": grouped, "dense_tflops": dense, "ratio": grouped / dense}
    return rates

if __name__ == "__main__":
    main()
