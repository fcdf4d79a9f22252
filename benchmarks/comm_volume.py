"""Expert-parallel all-to-all volume: the bytes per token dsmoe.parallel.comm_model predicts, against what the ranks
of `dsmoe train` measure (metrics.jsonl's "traffic"), and the predicted volume and link time of the papers' models.

(a) Small CPU runs under torchrun (gloo) of a tiny model, ep = 2 and 4, with and without device-limited routing
    (n_group = n_devices = ep, topk_group = M), fp32 and bf16 autocast. Per MoE layer: the predicted bytes per
    token (uniform routing, and the router's own group rule on iid scores) next to the measured ones (step 1, and
    the mean over all steps), and an exact check of the accounting: step 1 replayed in this process (same seed,
    same batch, the same split over the ranks, the experts' ranks counted by a dispatcher that moves nothing), its
    remote rows and pairs turned into bytes by comm_model.bytes_moved, against every rank's measured tokens_sent,
    bytes_sent and bytes_received.
(b) The predicted forward volume (bf16 hidden states) per token per MoE layer and per step over all MoE layers, and
    its time per micro-batch at the given link bandwidths (uniform routing), for paper-16b, paper-145b and
    deepseek-v3 with ep = the device count, without a group limit, with device-limited routing (n_group = devices,
    M = 3 and 4) and with a preset's own group limit (V3's 8 nodes).

    python benchmarks/comm_volume.py                     # both parts (the CPU runs take seconds each)
    python benchmarks/comm_volume.py --quick             # one 1-step ep=2 run and the table, to check the script runs
    python benchmarks/comm_volume.py --skip-runs         # only the table of (b)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from dsmoe import DeepSeekMoEForCausalLM, presets
from dsmoe.data import TrainBatches, prepare_data
from dsmoe.model.moe import LocalDispatcher
from dsmoe.parallel.comm_model import CommVolume, ExpertPlacement, bytes_moved, routed_ranks_per_token
from dsmoe.parallel.parallelize import moe_layers
from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.runtime.devices import autocast_context
from dsmoe.train.step import rank_micro_batches

TINY = dict(hidden_size=64, n_layers=2, n_heads=2, vocab_size=512, max_seq_len=64, intermediate_size=128,
            moe_intermediate_size=32, first_k_dense_replace=0)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
PRESETS = ("paper-16b", "paper-145b", "deepseek-v3")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ep", type=int, nargs="+", default=[2, 4], help="(a): ep degrees of the CPU runs")
    parser.add_argument("--topk-groups", type=int, nargs="+", default=[1, 2], help="(a): M of the device-limited runs")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPE_BYTES), choices=list(DTYPE_BYTES))
    parser.add_argument("--experts", type=int, default=16, help="(a): routed experts of the tiny model")
    parser.add_argument("--top-k", type=int, default=3, help="(a): experts per token of the tiny model")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="(a): sequences per step")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--out", type=Path, help="(a): keep the runs here (default: a temporary directory)")
    parser.add_argument("--devices", type=int, nargs="+", default=[8, 64, 256], help="(b): ep = devices")
    parser.add_argument("--limits", type=int, nargs="+", default=[3, 4], help="(b): M of device-limited routing")
    parser.add_argument("--bandwidths", type=float, nargs="+", default=[50, 160, 400],
                        help="(b): per-device link bandwidths, GB/s")
    parser.add_argument("--tokens-per-device", type=int, default=4096, help="(b): tokens of one micro-batch")
    parser.add_argument("--samples", type=int, default=20000, help="iid score vectors for the router's rule")
    parser.add_argument("--skip-runs", action="store_true", help="only (b)")
    parser.add_argument("--quick", action="store_true", help="one 1-step ep=2 fp32 run, to check the script runs")
    return parser.parse_args()


def cpu_runs(args: argparse.Namespace) -> list[dict]:
    """(ep, topk_group or None, dtype) of each run: M = ep is no limit at all, so only M < ep."""
    return [dict(ep=ep, topk_group=limit, dtype=dtype) for ep in args.ep
            for limit in [None, *(m for m in args.topk_groups if m < ep)] for dtype in args.dtypes]


def train_command(run: dict, args: argparse.Namespace, out: Path, cache: Path) -> list[str]:
    model = {**TINY, "n_routed_experts": args.experts, "n_activated_experts": args.top_k,
             **({"n_group": run["ep"], "topk_group": run["topk_group"], "n_devices": run["ep"]}
                if run["topk_group"] else {})}
    settings = {**{f"model.{key}": value for key, value in model.items()}, "parallel.ep": run["ep"],
                "train.steps": args.steps, "train.batch_size": args.batch, "train.dtype": run["dtype"],
                "train.eval_every": 0, "train.save_every": 0, "data.seq_len": args.seq_len, "data.vocab_size": 300,
                "data.val_fraction": 0.01, "data.cache_dir": str(cache)}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(run["ep"]),
            "-m", "dsmoe", "train", "--data", "shakespeare", "--out", str(out),
            *(arg for key, value in settings.items() for arg in ("--set", f"{key}={json.dumps(value)}"))]


class CountingDispatcher(LocalDispatcher):
    """The local dispatcher, also counting the rows (one per token and ep rank holding its experts) and pairs the
    rank `source` would send to each ep rank: rows_QP[source, destination], pairs_QP likewise."""

    def __init__(self, n_experts: int, ep: int):
        super().__init__(n_experts)
        self.ep, self.source = ep, 0
        self.rows_QP = torch.zeros(ep, ep, dtype=torch.long)
        self.pairs_QP = torch.zeros(ep, ep, dtype=torch.long)

    def dispatch(self, x_TD, routing):
        n_tokens = x_TD.shape[0]
        rank_S = routing.expert_index_S // (self.n_experts // self.ep)
        self.pairs_QP[self.source] += torch.bincount(rank_S, minlength=self.ep)
        row_key_R = torch.unique(rank_S * n_tokens + routing.token_index_S)
        self.rows_QP[self.source] += torch.bincount(row_key_R // n_tokens, minlength=self.ep)
        return super().dispatch(x_TD, routing)


def replayed_traffic(run_dir: RunDir) -> list[dict[str, list[int]]]:
    """Per MoE layer, every rank's tokens_sent, bytes_sent and bytes_received of step 1 (as metrics.jsonl names
    them), from the rows and pairs of its part of the first batch routed by the run's initial weights here."""
    config = RunConfig.load(run_dir.config_path)
    data = prepare_data(config.data, run_dir.tokenizer_path, config.model.vocab_size, reuse_tokenizer=True)
    torch.manual_seed(config.train.seed)
    model = DeepSeekMoEForCausalLM(config.model).train()
    ep, train = config.parallel.ep, config.train
    counters = []
    for moe in moe_layers(model):
        moe.dispatcher = CountingDispatcher(moe.dispatcher.n_experts, ep)
        counters.append(moe.dispatcher)
    inputs, labels = TrainBatches(data.train.tokens, config.data.seq_len, train.batch_size * train.grad_accum,
                                  train.seed).batch(0)
    with torch.no_grad():
        for rank in range(ep):
            for counter in counters:
                counter.source = rank
            for micro_inputs, _ in rank_micro_batches(inputs, labels, train.grad_accum, ep, rank):
                with autocast_context(train.dtype, micro_inputs.device):
                    model(micro_inputs)
    return [exchanged(counter, config.model.hidden_size, DTYPE_BYTES[train.dtype]) for counter in counters]


def exchanged(counter: CountingDispatcher, hidden_size: int, dtype_bytes: int) -> dict[str, list[int]]:
    remote_QP = 1 - torch.eye(counter.ep, dtype=torch.long)  # a rank's own chunk never leaves it
    rows_QP, pairs_QP = counter.rows_QP * remote_QP, counter.pairs_QP * remote_QP
    rows_out, rows_in = rows_QP.sum(1).tolist(), rows_QP.sum(0).tolist()
    pairs_out, pairs_in = pairs_QP.sum(1).tolist(), pairs_QP.sum(0).tolist()
    return dict(tokens_sent=rows_out,
                bytes_sent=[bytes_moved(out, back, pairs, hidden_size, dtype_bytes)
                            for out, back, pairs in zip(rows_out, rows_in, pairs_out)],
                bytes_received=[bytes_moved(back, out, pairs, hidden_size, dtype_bytes)
                                for out, back, pairs in zip(rows_out, rows_in, pairs_in)])


def exactness(measured: dict, replayed: dict[str, list[int]]) -> str:
    """The replayed step 1 against the measured one: equal, or where it is not."""
    rows_off = sum(abs(a - b) for a, b in zip(measured["tokens_sent"], replayed["tokens_sent"]))
    bytes_off = max((a - b for name in ("bytes_sent", "bytes_received")
                     for a, b in zip(measured[name], replayed[name])), key=abs)
    if rows_off:
        return f"{rows_off} row(s) routed otherwise in the replay: {bytes_off:+d} B"
    return "equal, every rank" if bytes_off == 0 else f"ACCOUNTING OFF by {bytes_off:+d} B with equal rows"


def routed_volume(config, placement: ExpertPlacement, dtype_bytes: int, samples: int) -> CommVolume:
    """The volume with the ranks per token of the router's own rule (score function and group score) on iid
    scores: what a router with random weights does."""
    logits_TN = torch.randn(samples, config.n_routed_experts, generator=torch.Generator().manual_seed(0))
    scores_TN = logits_TN.sigmoid() if config.router == "sigmoid_topk" else logits_TN.softmax(dim=-1)
    ranks = routed_ranks_per_token(placement, scores_TN, config.group_score_size)
    return CommVolume.of(config, placement, dtype_bytes, ranks_per_token=ranks)


def measure(run: dict, args: argparse.Namespace, root: Path) -> list[dict]:
    """Train the run; one table row per MoE layer."""
    name = f"ep{run['ep']}_{'M' + str(run['topk_group']) if run['topk_group'] else 'nolimit'}_{run['dtype']}"
    run_dir = RunDir(root / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    finished = subprocess.run(train_command(run, args, run_dir.path, root / "cache"), capture_output=True, text=True,
                              env=env)
    if finished.returncode:
        raise RuntimeError(f"{name} failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    steps = [record for record in read_metrics(run_dir.metrics_path) if "loss" in record]
    config = RunConfig.load(run_dir.config_path)
    placement, dtype_bytes = ExpertPlacement.of(config.model, run["ep"]), DTYPE_BYTES[run["dtype"]]
    uniform = CommVolume.of(config.model, placement, dtype_bytes)
    routed = routed_volume(config.model, placement, dtype_bytes, args.samples)
    rows = []
    for (layer, first), replayed in zip(steps[0]["traffic"].items(), replayed_traffic(run_dir)):
        mean = sum(step["traffic"][layer]["bytes_per_token"] for step in steps) / len(steps)
        rows.append(dict(run, layer=layer, uniform=uniform, routed=routed, first=first, mean=mean,
                         exact=exactness(first, replayed)))
    return rows


def print_measured(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\n(a) tiny model, hidden {TINY['hidden_size']}, {args.experts} routed experts, top-{args.top_k}, "
          f"{args.batch} x {args.seq_len} tokens per step, {args.steps} steps; bytes per token per MoE layer\n")
    print("| ep | routing | dtype | layer | ranks/token: uniform | router, iid | measured step 1 | bytes/token: "
          "uniform | router, iid | measured step 1 | step 1 / uniform | step 1 / router | mean of steps / uniform "
          "| exact (replayed step 1) |")
    print("|---" * 14 + "|")
    for row in rows:
        uniform, routed, first = row["uniform"], row["routed"], row["first"]
        routing = f"n_group={row['ep']}, M={row['topk_group']}" if row["topk_group"] else "no limit"
        print(f"| {row['ep']} | {routing} | {row['dtype']} | {row['layer']} | {uniform.ranks_per_token:.3f} "
              f"| {routed.ranks_per_token:.3f} | {first['ranks_per_token']:.3f} | {uniform.bytes_per_token:.1f} "
              f"| {routed.bytes_per_token:.1f} | {first['bytes_per_token']:.1f} "
              f"| {first['bytes_per_token'] / uniform.bytes_per_token:.3f} "
              f"| {first['bytes_per_token'] / routed.bytes_per_token:.3f} "
              f"| {row['mean'] / uniform.bytes_per_token:.3f} | {row['exact']} |")


def routings(config, devices: int, limits: list[int]) -> list[tuple[str, int, int]]:
    """(label, n_group, topk_group): no limit, device-limited with each M, and the preset's own limit if any."""
    own = ([(f"own: n_group={config.n_group}, M={config.topk_group}", config.n_group, config.topk_group)]
           if config.n_group > 1 and config.n_group != devices else [])
    return [("no limit", 1, 1), *((f"n_group={devices}, M={m}", devices, m) for m in limits), *own]


def print_predicted(args: argparse.Namespace) -> None:
    bandwidths = [gb_s * 1e9 for gb_s in args.bandwidths]
    print(f"\n(b) predicted forward all-to-all, bf16 hidden states, ep = devices, {args.tokens_per_device} tokens per "
          "device per micro-batch; time = tokens * bytes / bandwidth, per MoE layer and over all MoE layers\n")
    print("| model | devices | routing | experts/device | ranks/token: uniform | router, iid | KB/token/layer: "
          "uniform | router, iid | MB/token/step (uniform) | "
          + " | ".join(f"ms/layer, ms/step @ {gb_s:g} GB/s" for gb_s in args.bandwidths) + " |")
    print("|---" * (9 + len(bandwidths)) + "|")
    skipped = []
    for name in PRESETS:
        config = presets.get(name)
        for devices in args.devices:
            for label, n_group, topk_group in routings(config, devices, args.limits):
                try:
                    placement = ExpertPlacement(config.n_routed_experts, config.n_activated_experts, devices,
                                                n_group, topk_group)
                except ValueError as refusal:
                    skipped.append(f"{name}, {devices} devices, {label}: {refusal}")
                    continue
                uniform = CommVolume.of(config, placement, dtype_bytes=2)
                routed = routed_volume(config, placement, 2, args.samples)
                layer_s = [uniform.seconds_per_layer(args.tokens_per_device, bw) for bw in bandwidths]
                print(f"| {name} | {devices} | {label} | {placement.experts_per_rank} "
                      f"| {uniform.ranks_per_token:.2f} | {routed.ranks_per_token:.2f} "
                      f"| {uniform.bytes_per_token / 1e3:.1f} | {routed.bytes_per_token / 1e3:.1f} "
                      f"| {uniform.bytes_per_token_per_step / 1e6:.2f} | "
                      + " | ".join(f"{t * 1e3:.2f}, {t * uniform.n_moe_layers * 1e3:.0f}" for t in layer_s) + " |")
    print("\nskipped (the layout does not divide):\n" + "\n".join(f"- {line}" for line in skipped))


def main() -> None:
    args = parse_args()
    if args.quick:
        args.ep, args.dtypes, args.steps, args.batch, args.seq_len = [2], ["float32"], 1, 4, 32
        args.topk_groups = []
    print(f"torch {torch.__version__}")
    if not args.skip_runs:
        with tempfile.TemporaryDirectory() as scratch:
            root = args.out or Path(scratch)
            rows = [row for run in tqdm(cpu_runs(args), desc="CPU runs", unit="run")
                    for row in measure(run, args, root)]
        print_measured(rows, args)
    print_predicted(args)


if __name__ == "__main__":
    main()
