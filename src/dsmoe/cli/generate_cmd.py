"""Generate text from a run's latest checkpoint with the KV cache, streaming tokens as they come."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsmoe.inference import SamplingConfig
from dsmoe.inference.stream import stream_completion
from dsmoe.runs import load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--prompt", action="append", default=[], help="prompt text (repeatable)")
    parser.add_argument("--prompts-file", help="file with one prompt per line")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    prompts = list(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise ValueError(f"--prompts-file {str(path)!r} does not exist")
        prompts += [line for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give at least one --prompt or a --prompts-file")
    loaded = load_run(args.run)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    for prompt in prompts:
        sys.stdout.write(prompt)
        stream_completion(loaded.model, loaded.tokenizer, prompt, sampling, sys.stdout)
        sys.stdout.write("\n\n")
    return 0
