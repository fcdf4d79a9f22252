"""Greedy decoding throughput with a KV cache: dsmoe's generate_batch vs transformers' generate() on the same
small DeepSeek-V3-style model with the same weights (MLA + 1 shared and 31 routed experts), at batch 1 and 16.

    python benchmarks/decode.py                       # 32-token prompts, 64 new tokens, fp32, CPU
    python benchmarks/decode.py --compile             # adds dsmoe with the torch.compile'd decoding step
    python benchmarks/decode.py --compile --ragged    # prompts of different lengths (a left-padded batch)
    python benchmarks/decode.py --device cuda --dtype bfloat16 --batches 1 32     # a GPU

Without transformers installed, dsmoe alone is timed and the comparison is recorded as skipped.
"""

from __future__ import annotations

import argparse
import time

import torch

from dsmoe.inference.generate import SamplingConfig, generate_batch, left_pad
from results import print_result, transformers_label, transformers_missing
from small_models import build_models
from timing import device_name, median, print_times, setup_cpu, time_round_robin


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="the models' weights")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="also time generate_batch(..., compile_decode=True); its first call compiles, untimed")
    parser.add_argument("--ragged", action="store_true",
                        help="prompts of prompt-len/2 .. prompt-len tokens, left-padded (transformers: attention_mask)")
    parser.add_argument("--system-allocator", action="store_true", help="leave glibc's allocator as it is")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1 and 2, 8-token prompts, 8 new "
                        "tokens, 1 timed round")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.prompt_len, args.new_tokens, args.warmup, args.repeats = [1, 2], 8, 8, 1, 1
    return args


def random_prompts(batch: int, prompt_len: int, ragged: bool, vocab_size: int) -> list[list[int]]:
    """Random token prompts, all prompt_len long, or (ragged) spread over prompt_len // 2 .. prompt_len."""
    lengths = [prompt_len - (row * (prompt_len // 2) // max(batch - 1, 1) if ragged else 0) for row in range(batch)]
    return [torch.randint(0, vocab_size, (length,)).tolist() for length in lengths]


@torch.no_grad()
def main() -> None:
    args = parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    missing = transformers_missing()
    print(f"{setup_cpu(args.system_allocator)}, {transformers_label()}, {args.dtype} {device_name(device)}")
    models = {name: model.to(device, dtype).eval() for name, model in
              build_models(args.prompt_len + args.new_tokens, with_transformers=missing is None).items()}
    dsmoe, hf = models["dsmoe"], models.get("hf-deepseek_v3")
    n = args.new_tokens
    greedy = SamplingConfig(max_new_tokens=n, temperature=0.0, top_k=None, eos_token_id=None)
    results = {}
    for batch in args.batches:
        prompts = random_prompts(batch, args.prompt_len, args.ragged, dsmoe.config.vocab_size)
        input_ids_BL, real_BL = left_pad(prompts, device)
        runs = {"dsmoe": lambda: generate_batch(dsmoe, prompts, greedy)}
        if hf is not None:
            runs["hf-generate"] = lambda: hf.generate(input_ids_BL, attention_mask=real_BL.long(), max_new_tokens=n,
                                                      min_new_tokens=n, do_sample=False, pad_token_id=0)
        if args.compile:
            runs["dsmoe-compiled"] = lambda: generate_batch(dsmoe, prompts, greedy, compile_decode=True)
        dsmoe_tokens = torch.tensor(runs["dsmoe"]())
        same = {}
        if hf is not None:
            same["hf-generate"] = torch.equal(dsmoe_tokens, runs["hf-generate"]()[:, input_ids_BL.shape[1]:].cpu())
        if args.compile:
            start = time.perf_counter()
            same["dsmoe-compiled"] = torch.equal(dsmoe_tokens, torch.tensor(runs["dsmoe-compiled"]()))
            print(f"batch {batch}: first compiled call (compiles the decoding step) {time.perf_counter() - start:.1f} s")
        lengths = f"{min(map(len, prompts))}-{args.prompt_len}" if args.ragged else f"{args.prompt_len}"
        print(f"batch {batch}: prompts of {lengths} tokens, {n} new tokens; greedy tokens identical to dsmoe's: {same}; "
              f"{args.warmup} warm-up + {args.repeats} timed rounds")
        times = time_round_robin(runs, args.warmup, args.repeats, device)
        print_times(times, batch * n, "new tokens", reference="dsmoe")
        results[str(batch)] = {"tokens_per_s": {name: batch * n / median(samples) for name, samples in times.items()},
                               "same_tokens_as_dsmoe": same}
    print_result("decode", device=device_name(device), dtype=args.dtype, prompt_len=args.prompt_len, new_tokens=n,
                 batches=results, skipped={"hf-generate": missing} if missing else {})


if __name__ == "__main__":
    main()
