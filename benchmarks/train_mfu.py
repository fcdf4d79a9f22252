"""Training throughput and model FLOPs utilisation (MFU) of a preset: forward, backward and AdamW steps under
bf16 autocast (fp32 master weights, as `dsmoe train` runs), against the same device's measured dense matmul rate.

MFU = (model FLOPs per step / step time) / peak, with model FLOPs from dsmoe.model.estimates' causal count (2 per
multiply-add of the activated weights, router gates included, plus attention over the causal context, training =
3 x forward: flops_per_token_training_causal, not the papers' count) and the peak measured in the same run as
the rate of an 8192^3 matmul in the same dtype (--peak-tflops gives a datasheet figure instead).

    python benchmarks/train_mfu.py --preset paper-2b --device cuda --batch 8 --seq-len 2048   # a GPU
    python benchmarks/train_mfu.py --quick                                                   # CPU smoke run
"""

from __future__ import annotations

import argparse
import gc

import torch

from dsmoe import DeepSeekMoEForCausalLM, presets
from dsmoe.model.estimates import estimate_costs
from results import print_result
from timing import device_name, median, time_round_robin

PEAK_MATMUL_SIZE = 8192


def measured_matmul_tflops(device: torch.device, dtype: torch.dtype, size: int) -> float:
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    times = time_round_robin({"mm": lambda: torch.mm(a, b)}, warmup=3, repeats=10, device=device)
    return 2 * size ** 3 / median(times["mm"]) / 1e12


def training_step(model: DeepSeekMoEForCausalLM, optimizer: torch.optim.Optimizer, input_ids: torch.Tensor,
                  dtype: torch.dtype):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(input_ids.device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids[:, :-1], labels=input_ids[:, 1:]).loss
        loss.backward()
        optimizer.step()
    return step


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper-2b", choices=presets.names())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="autocast dtype")
    parser.add_argument("--batch", type=int, default=8,
                        help="sequences per step; halved while a GPU runs out of memory")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak to divide by (default: measured)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny preset, fp32, batch 2 x 64, 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.dtype, args.batch, args.seq_len, args.warmup, args.repeats = "tiny", "float32", 2, 64, 1, 2
    return args


def step_times(args: argparse.Namespace, batch: int, device: torch.device, dtype: torch.dtype) -> list[float]:
    """Seconds per timed training step of the preset at this batch size."""
    torch.manual_seed(0)
    config = presets.get(args.preset, max_seq_len=args.seq_len)
    with torch.device(device):  # initialised where it runs: a 2B-parameter init on the host takes minutes
        model = DeepSeekMoEForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    input_ids = torch.randint(0, config.vocab_size, (batch, args.seq_len + 1), device=device)
    step = training_step(torch.compile(model) if args.compile else model, optimizer, input_ids, dtype)
    return time_round_robin({"step": step}, args.warmup, args.repeats, device)["step"]


def fitting_step_times(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> tuple[int, list[float]]:
    """(batch, step times) at --batch, or at the largest half of it that fits the GPU's memory."""
    batch = args.batch
    while True:
        try:
            return batch, step_times(args, batch, device, dtype)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
        print(f"  out of GPU memory at batch {batch}: trying {batch // 2}")
        batch //= 2
        gc.collect()
        torch.cuda.empty_cache()


def main() -> None:
    args = parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    batch, times = fitting_step_times(args, device, dtype)
    costs = estimate_costs(presets.get(args.preset, max_seq_len=args.seq_len), batch, args.seq_len, args.dtype)
    tokens = batch * args.seq_len
    step_flops = costs.flops_per_token_training_causal * tokens
    achieved = step_flops / median(times) / 1e12
    peak = args.peak_tflops or measured_matmul_tflops(device, dtype, PEAK_MATMUL_SIZE if device.type == "cuda" else 1024)
    print(f"torch {torch.__version__}, {device_name(device)}, autocast {args.dtype}{', compiled' if args.compile else ''}")
    print(f"preset {args.preset}: {costs.params.total / 1e9:.2f} B parameters, {costs.params.activated / 1e9:.2f} B "
          f"activated; batch {batch} x {args.seq_len}; {args.warmup} warm-up + {args.repeats} timed steps")
    print(f"  step median {median(times) * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms; {tokens / median(times):,.0f} tokens/s")
    print(f"  model FLOPs {step_flops / 1e12:.2f} TFLOP/step -> {achieved:.1f} TFLOP/s; "
          f"peak {peak:.1f} TFLOP/s ({'given' if args.peak_tflops else 'measured matmul'}); MFU {achieved / peak:.1%}")
    peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    if device.type == "cuda":
        print(f"  peak GPU memory {peak_memory_gib:.1f} GiB")
    print_result("train_mfu", device=device_name(device), dtype=args.dtype, preset=args.preset, batch=batch,
                 seq_len=args.seq_len, compiled=args.compile, step_ms=median(times) * 1e3,
                 tokens_per_s=tokens / median(times), achieved_tflops=achieved, peak_tflops=peak,
                 peak_source="given" if args.peak_tflops else "measured matmul", mfu=achieved / peak,
                 peak_memory_gib=peak_memory_gib)


if __name__ == "__main__":
    main()
