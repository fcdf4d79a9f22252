"""Serve a run's latest checkpoint over HTTP with OpenAI's completions API (/v1/completions, streamed or not, with
log-probabilities), plus /health and Prometheus /metrics; requests are batched continuously by the serving engine.
Listens on 127.0.0.1 unless --host says otherwise; SIGTERM finishes the requests in flight, then exits 0. Needs
the `serve` extra: pip install 'dsmoe[serve]'."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from dsmoe.cli.device_option import add_device_option
from dsmoe.config.data_config import END_OF_TEXT
from dsmoe.runs import load_run
from dsmoe.runtime.devices import resolve_device
from dsmoe.serve import Engine, EngineConfig

API_KEY_VARIABLE = "DSMOE_API_KEY"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory (its newest intact checkpoint is served)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: a free one)")
    parser.add_argument("--max-batch", type=int, default=8, help="most sequences decoded together (default 8)")
    parser.add_argument("--max-queue", type=int, default=64,
                        help="most sequences waiting for a slot; beyond it requests get 429 (default 64)")
    parser.add_argument("--api-key", default=None,
                        help=f"require 'Authorization: Bearer KEY' on every endpoint but /health (default: "
                             f"${API_KEY_VARIABLE} if set, else no key)")
    parser.add_argument("--model-name", default=None, help="the model's name in the API (default: the run's "
                                                           "directory name)")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="seconds in-flight requests may take to finish after SIGTERM (default 30)")
    add_device_option(parser, "the model and its KV cache are: on a GPU with native bf16 in the run's train.dtype "
                      "(bf16 autocast for a bf16 run), elsewhere in float32")


def run(args: argparse.Namespace) -> int:
    from dsmoe.serve.http import ServedModel, serve  # needs the serve extra; a missing one is a one-line error

    device = resolve_device(args.device)
    engine_config = EngineConfig(args.max_batch, args.max_queue)  # checks the sizes before the model loads
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} must be in [0, 65535]")
    loaded = load_run(args.run, device=device)
    print(loaded.expert_kernel(), file=sys.stderr)
    eos = loaded.tokenizer.token_to_id(END_OF_TEXT)
    engine = Engine(loaded.model, dataclasses.replace(engine_config, eos_token_id=eos), loaded.tokenizer.decode,
                    loaded.autocast)
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE)
    if api_key is None and args.host not in LOOPBACK_HOSTS:
        print(f"dsmoe serve: warning: --host {args.host} without --api-key: anyone who reaches this address can use "
              f"the model", file=sys.stderr)
    name = args.model_name or Path(args.run).resolve().name
    serve(ServedModel(name, engine, loaded.tokenizer), args.host, args.port, api_key,
          drain_timeout_s=args.drain_timeout)
    return 0
