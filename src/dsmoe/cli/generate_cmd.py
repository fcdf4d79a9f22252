"""Generate text from a run's latest checkpoint with the KV cache: one prompt streamed as it comes, several
generated --batch-size at a time (left-padded), each printed when its batch is done. --speculative decodes one
prompt greedily with the model's MTP modules drafting, and reports how many drafts were accepted. Runs on --device:
on a GPU with native bf16 in the run's train.dtype (bf16 autocast for a bf16 run), elsewhere in float32."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsmoe.cli.device_option import add_device_option
from dsmoe.config.data_config import END_OF_TEXT
from dsmoe.inference import SamplingConfig
from dsmoe.inference.generate import room_for_prompt
from dsmoe.inference.speculative import check_speculative
from dsmoe.inference.stream import complete_in_batches, stream_completion, stream_speculative
from dsmoe.runs import LoadedRun, load_run
from dsmoe.runtime.devices import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--prompt", action="append", default=[], help="prompt text (repeatable)")
    parser.add_argument("--prompts-file", help="file with one prompt per line")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=None,
                        help="softmax temperature, 0 = greedy (default 0.8; 0 with --speculative)")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0,
                        help="each prompt samples from its own generator with this seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="prompts generated together when there are several (default 8)")
    parser.add_argument("--speculative", action="store_true",
                        help="greedy self-speculative decoding of one prompt: the MTP modules draft, the model "
                             "verifies (needs n_mtp_modules >= 1); prints the draft acceptance rate")
    parser.add_argument("--compile", action="store_true",
                        help="decode through torch.compile: faster per token once compiled, 10-60 s to compile first")
    add_device_option(parser, "the model, its KV cache and the sampling generators are: on a GPU with native bf16 "
                      "in the run's train.dtype (bf16 autocast for a bf16 run), elsewhere in float32")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    prompts = list(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise ValueError(f"--prompts-file {str(path)!r} does not exist")
        prompts += [line for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give at least one --prompt or a --prompts-file")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be >= 1")
    if args.speculative and args.compile:
        raise ValueError("--compile applies to plain decoding; --speculative runs eagerly (give one of them)")
    if args.speculative and len(prompts) != 1:
        raise ValueError(f"--speculative decodes one prompt; got {len(prompts)} (give a single --prompt)")
    temperature = args.temperature if args.temperature is not None else 0.0 if args.speculative else 0.8
    loaded = load_run(args.run, device=device)
    sampling = SamplingConfig(args.max_new_tokens, temperature, args.top_k, args.top_p, args.seed,
                              eos_token_id=loaded.tokenizer.token_to_id(END_OF_TEXT))
    room_for_prompt(sampling, loaded.model.config.max_seq_len)  # before anything is printed
    if args.speculative:
        check_speculative(loaded.model, sampling)  # before anything is printed
    print(loaded.expert_kernel(), file=sys.stderr)
    with loaded.autocast():
        generate_text(loaded, prompts, sampling, args)
    return 0


def generate_text(loaded: LoadedRun, prompts: list[str], sampling: SamplingConfig, args: argparse.Namespace) -> None:
    """The completions on stdout: streamed (one prompt, plainly or speculatively), or batch by batch."""
    if args.speculative:
        sys.stdout.write(prompts[0])
        _, result = stream_speculative(loaded.model, loaded.tokenizer, prompts[0], sampling, sys.stdout)
        sys.stdout.write(f"\n\n{result.summary()}\n")
        return
    if len(prompts) == 1:
        sys.stdout.write(prompts[0])
        stream_completion(loaded.model, loaded.tokenizer, prompts[0], sampling, sys.stdout, args.compile)
        sys.stdout.write("\n\n")
        return
    completions = complete_in_batches(loaded.model, loaded.tokenizer, prompts, sampling, args.batch_size,
                                      args.compile)
    for prompt, completion in zip(prompts, completions):
        sys.stdout.write(f"{prompt}{completion}\n\n")
        sys.stdout.flush()
