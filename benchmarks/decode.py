"""Greedy decoding throughput with a KV cache: dsmoe's generate_batch vs transformers' generate() on the same
small DeepSeek-V3-style model with the same weights (MLA + 1 shared and 31 routed experts), at batch 1 and 16.

    python benchmarks/decode.py                       # 32-token prompts, 64 new tokens, fp32, CPU
    python benchmarks/decode.py --compile             # adds dsmoe with the torch.compile'd decoding step
    python benchmarks/decode.py --compile --ragged    # prompts of different lengths (a left-padded batch)
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers

from dsmoe.inference.generate import SamplingConfig, generate_batch, left_pad
from small_models import build_models
from timing import print_times, setup_cpu, time_round_robin


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    return parser.parse_args()


def random_prompts(batch: int, prompt_len: int, ragged: bool, vocab_size: int) -> list[list[int]]:
    """Random token prompts, all prompt_len long, or (ragged) spread over prompt_len // 2 .. prompt_len."""
    lengths = [prompt_len - (row * (prompt_len // 2) // max(batch - 1, 1) if ragged else 0) for row in range(batch)]
    return [torch.randint(0, vocab_size, (length,)).tolist() for length in lengths]


@torch.no_grad()
def main() -> None:
    args = parse_args()
    print(f"{setup_cpu(args.system_allocator)}, transformers {transformers.__version__}, fp32")
    models = build_models(args.prompt_len + args.new_tokens)
    dsmoe, hf = models["dsmoe"].eval(), models["hf-deepseek_v3"].eval()
    n = args.new_tokens
    greedy = SamplingConfig(max_new_tokens=n, temperature=0.0, top_k=None, eos_token_id=None)
    for batch in args.batches:
        prompts = random_prompts(batch, args.prompt_len, args.ragged, dsmoe.config.vocab_size)
        input_ids_BL, real_BL = left_pad(prompts, torch.device("cpu"))
        runs = {"dsmoe": lambda: generate_batch(dsmoe, prompts, greedy),
                "hf-generate": lambda: hf.generate(input_ids_BL, attention_mask=real_BL.long(), max_new_tokens=n,
                                                   min_new_tokens=n, do_sample=False, pad_token_id=0)}
        if args.compile:
            runs["dsmoe-compiled"] = lambda: generate_batch(dsmoe, prompts, greedy, compile_decode=True)
        dsmoe_tokens = torch.tensor(runs["dsmoe"]())
        hf_tokens = runs["hf-generate"]()[:, input_ids_BL.shape[1]:]
        same = {"hf-generate": torch.equal(dsmoe_tokens, hf_tokens)}
        if args.compile:
            start = time.perf_counter()
            same["dsmoe-compiled"] = torch.equal(dsmoe_tokens, torch.tensor(runs["dsmoe-compiled"]()))
            print(f"batch {batch}: first compiled call (compiles the decoding step) {time.perf_counter() - start:.1f} s")
        lengths = f"{min(map(len, prompts))}-{args.prompt_len}" if args.ragged else f"{args.prompt_len}"
        print(f"batch {batch}: prompts of {lengths} tokens, {n} new tokens; greedy tokens identical to dsmoe's: {same}; "
              f"{args.warmup} warm-up + {args.repeats} timed rounds")
        times = time_round_robin(runs, args.warmup, args.repeats)
        print_times(times, batch * n, "new tokens", reference="dsmoe")


if __name__ == "__main__":
    main()
