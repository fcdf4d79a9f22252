"""What the exact global-batch balance scope costs: one optimizer step's forward/backward over grad_accum
micro-batches (dsmoe.train.step.accumulate_gradients) with balance_scope="global_batch" against "micro_batch", on
the same model and tokens, interleaved round-robin in one process.

    python benchmarks/balance_scope.py                  # the tiny preset, 4 micro-batches of 8 x 128 tokens, CPU
    python benchmarks/balance_scope.py --quick          # smoke run
"""

from __future__ import annotations

import argparse

import torch

from dsmoe import DeepSeekMoEForCausalLM, presets
from dsmoe.train.step import accumulate_gradients
from timing import print_times, setup_cpu, time_round_robin

SCOPES = ("micro_batch", "global_batch")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8, help="sequences per micro-batch")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a toy size, to check that the script runs")
    return parser.parse_args()


def step_of(scope: str, preset: str, tokens: torch.Tensor, grad_accum: int):
    torch.manual_seed(0)
    model = DeepSeekMoEForCausalLM(presets.get(preset, balance_scope=scope)).train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, tokens, tokens, grad_accum, "float32")
    return step


def main() -> None:
    args = parse_args()
    if args.quick:
        args.grad_accum, args.batch, args.seq_len, args.warmup, args.repeats = 2, 2, 32, 1, 1
    print(setup_cpu(system_allocator=False))
    vocab = presets.get(args.preset).vocab_size
    tokens = torch.randint(0, vocab, (args.grad_accum * args.batch, args.seq_len),
                           generator=torch.Generator().manual_seed(0))
    runs = {scope: step_of(scope, args.preset, tokens, args.grad_accum) for scope in SCOPES}
    times = time_round_robin(runs, args.warmup, args.repeats)
    print(f"preset {args.preset}, {args.grad_accum} micro-batches of {args.batch} x {args.seq_len} tokens, fp32")
    print_times(times, tokens.numel(), "tokens", reference="micro_batch")


if __name__ == "__main__":
    main()
