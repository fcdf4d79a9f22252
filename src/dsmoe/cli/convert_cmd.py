"""Convert a Hugging Face checkpoint directory into a run directory, or a run's latest checkpoint into one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dsmoe.cli.device_option import add_device_option
from dsmoe.interop.families import EXPORTABLE_EXAMPLE, exportable
from dsmoe.interop.hf import TOKENIZER_FILE
from dsmoe.interop.run_dirs import export_run, import_run
from dsmoe.runs import RunDir
from dsmoe.runtime.devices import resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from-hf", metavar="DIR", help="Hugging Face checkpoint directory (config.json and "
                           "*.safetensors) to import as a run directory")
    direction.add_argument("--to-hf", metavar="RUN_DIR", help="run directory whose latest checkpoint to export")
    parser.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    parser.add_argument("--model-type", choices=exportable(), default=None,
                        help="family to export as (default: the first that fits the run's config, its closest "
                             "family first; if none fits, the error lists why for each); runs of the shipped "
                             f"{EXPORTABLE_EXAMPLE[0]} export as {EXPORTABLE_EXAMPLE[1]}")
    parser.add_argument("--no-mtp", dest="mtp", action="store_false",
                        help="export without the MTP (multi-token prediction) layers, for transformers, which has "
                             "none and reports a kept one's model.layers.{N}.* tensors as UNEXPECTED keys; the main "
                             "model's logits are the same either way (docs/INTEROP.md)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="weight dtype of an import")
    add_device_option(parser, "the model is held while converting: an import's weights are cast and placed there "
                      "as they stream in, an export's checkpoint is loaded there; the files written are the same on "
                      "every device", default="cpu", default_help="cpu")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.from_hf:
        if args.model_type or not args.mtp:
            raise ValueError("--model-type and --no-mtp apply to --to-hf; an import reads config.json as it is")
        out = import_run(args.from_hf, args.out, DTYPES[args.dtype], device)
        print(f"run directory: {out}")
        tokenizer = RunDir(out).tokenizer_path
        if not tokenizer.is_file():
            print(f"note: {args.from_hf} has no {TOKENIZER_FILE}; `dsmoe eval` and `dsmoe generate` need one: copy "
                  f"the model's tokenizers-format {TOKENIZER_FILE} to {tokenizer}", file=sys.stderr)
        return 0
    out = export_run(args.to_hf, args.out, args.model_type, device, args.mtp)
    print(f"Hugging Face directory: {out} ({', '.join(sorted(path.name for path in Path(out).iterdir()))})")
    return 0
