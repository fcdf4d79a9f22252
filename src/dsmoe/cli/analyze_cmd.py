"""Analyse a run's experts: load balance, specialisation, co-activation, redundancy, probes, in one HTML report.

Writes numbers.json, PNG plots and a self-contained report.html (default RUN/analysis/report/); the routing trace
it reads is kept under RUN/analysis/traces/ and reused by the next analysis of the same checkpoint and data.
The models run on --device in float32 (so a stored trace holds on every device); the statistics and the report
are computed on the CPU.
"""

from __future__ import annotations

import argparse

from dsmoe.analysis.analyze import DEFAULT_MAX_TOKENS, analyze_run
from dsmoe.analysis.domain_data import routed_summary
from dsmoe.cli.device_option import add_device_option
from dsmoe.runtime.devices import resolve_device


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1, else a message naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--data", help="what to route: 'domains' (the held-out text of the built-in four-domain "
                        "corpus), or a file, directory or glob (all of its text, one domain per file); default: "
                        "the run's validation split")
    parser.add_argument("--checkpoint", type=int, metavar="STEP",
                        help="analyse the checkpoint of this step (default: the newest intact one)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                        help="other runs whose expert-disabling curve goes on the same plot")
    parser.add_argument("--out", help="output directory (default RUN/analysis/report); an earlier analysis there "
                        "is replaced once the new one is complete")
    parser.add_argument("--max-tokens", type=positive_int, default=DEFAULT_MAX_TOKENS,
                        help=f"tokens read per domain at most, its first ones (default {DEFAULT_MAX_TOKENS:,})")
    parser.add_argument("--probe-batches", type=positive_int, default=8,
                        help="batches of windows per domain each probe's loss is measured on (default 8); more "
                        "narrow its noise bars")
    parser.add_argument("--no-probes", action="store_true", help="skip the expert-disabling and shared-expert "
                        "probes (they evaluate the model several times)")
    add_device_option(parser, "the routing trace is recorded and the probes run, in float32")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    analysis = analyze_run(args.run, args.data, args.checkpoint, tuple(args.compare), args.out, args.max_tokens,
                           not args.no_probes, args.probe_batches, device)
    numbers = analysis.numbers
    print(f"analysed {numbers['checkpoint']} on {numbers['data']}")
    print(f"  domains: {', '.join(numbers['domains'])}")
    print(f"  tokens: {routed_summary(numbers['tokens_per_domain'], numbers['seq_len'])}")
    for layer, stats in numbers["layers"].items():
        load, domains = stats["load"], stats["domains"]
        print(f"  layer {layer:>2}: MaxVio {load['max_vio']:.3f}  CV {load['cv']:.3f}  dead {len(load['dead'])}  "
              f"domain NMI {domains['nmi']:.3f}")
    print(f"report: {analysis.report_path}")
    return 0
