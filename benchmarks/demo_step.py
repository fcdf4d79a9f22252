"""The demo's training step: the tiny DeepSeekMoE of configs/tiny.toml against its dense counterpart (the same
activated parameters per token), each with the optimizer and settings of the demo's config, timed side by side.

    python benchmarks/demo_step.py                     # the demo config as it ships
    python benchmarks/demo_step.py --set train.optimizer=adamw

A step is dsmoe.train.calibrate.training_step, what the training loop does per optimizer step: forward, backward,
gradient clipping, the optimizer and its post-step hooks (the aux-free bias update), on random tokens of the demo's
batch shape.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from dsmoe.demo import DEMO_CONFIG
from dsmoe.model import count_params
from dsmoe.model.counterpart import dense_counterpart
from dsmoe.runs import RunConfig
from dsmoe.runtime.devices import resolve_device, resolve_dtype
from dsmoe.train.calibrate import training_step
from timing import median, print_times, setup_cpu, time_round_robin


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--system-allocator", action="store_true", help="leave glibc's allocator as it is")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    moe = RunConfig.load(DEMO_CONFIG, args.overrides)
    device = resolve_device(moe.train.device, "train.device")
    print(f"{setup_cpu(args.system_allocator)}, {device}, {resolve_dtype(moe.train.dtype, device)}")
    configs = {"DeepSeekMoE": moe, "dense": dataclasses.replace(moe, model=dense_counterpart(moe.model))}
    for name, config in configs.items():
        params = count_params(config.model)
        print(f"{name}: {params.total:,} params, {params.activated:,} activated, optimizer {config.train.optimizer}")
    torch.manual_seed(0)
    times = time_round_robin({name: training_step(config, device) for name, config in configs.items()},
                             args.warmup, args.repeats)
    tokens = moe.train.batch_size * moe.train.grad_accum * moe.data.seq_len
    print(f"batch {moe.train.batch_size} x seq {moe.data.seq_len}; {args.warmup} warm-up + {args.repeats} timed rounds")
    print_times(times, tokens, "tokens", reference="dense")
    print(f"DeepSeekMoE tokens/s / dense tokens/s: {median(times['dense']) / median(times['DeepSeekMoE']):.3f}")


if __name__ == "__main__":
    main()
