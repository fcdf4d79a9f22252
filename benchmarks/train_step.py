"""Training-step throughput (forward, backward, AdamW) of a small DeepSeek-V3-style MoE: dsmoe vs transformers'
DeepseekV3ForCausalLM at the same config and vs a dense dsmoe model with the same activated FLOPs.

    python benchmarks/train_step.py                  # batch 8 x seq 256, fp32, CPU
    python benchmarks/train_step.py --compile        # adds dsmoe under torch.compile
"""

from __future__ import annotations

import argparse

import torch
import transformers

from small_models import build_models
from timing import print_times, setup_cpu, time_round_robin


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, input_ids: torch.Tensor):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(input_ids, labels=input_ids).loss.backward()
        optimizer.step()
    return step


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="also time dsmoe compiled with torch.compile")
    parser.add_argument("--system-allocator", action="store_true", help="leave glibc's allocator as it is")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"{setup_cpu(args.system_allocator)}, transformers {transformers.__version__}, fp32")
    models = build_models(args.seq_len)
    if args.compile:
        models["dsmoe-compiled"] = torch.compile(models["dsmoe"])
    input_ids = torch.randint(0, models["dsmoe"].config.vocab_size, (args.batch, args.seq_len))
    runs = {}
    for name, model in models.items():
        model.train()
        runs[name] = training_step(model, torch.optim.AdamW(model.parameters(), lr=1e-4), input_ids)
    times = time_round_robin(runs, args.warmup, args.repeats)
    print(f"batch {args.batch} x seq {args.seq_len}; {args.warmup} warm-up + {args.repeats} timed rounds")
    print_times(times, args.batch * args.seq_len, "tokens", reference="dsmoe")


if __name__ == "__main__":
    main()
