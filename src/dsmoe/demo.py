"""The quickstart's main job: build the `tiny` DeepSeekMoE preset, count it, run it once, show routing."""

from __future__ import annotations

import argparse
import time

import torch

from dsmoe import presets
from dsmoe.model import DeepSeekMoEForCausalLM, count_params


def expert_load_table(model_out, moe_layers: list[int]) -> str:
    """Per MoE layer: tokens per expert, and the max/mean load ratio (1.0 = perfectly balanced)."""
    rows = []
    for layer, stats in zip(moe_layers, model_out.router_stats):
        load = stats.tokens_per_expert.float()
        rows.append(f"layer {layer}: max/mean {load.max() / load.mean():.2f}  tokens/expert {stats.tokens_per_expert.tolist()}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="tiny", choices=presets.names())
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args(argv)

    config = presets.get(args.preset)
    print(f"preset {args.preset!r}: {config.n_shared_experts} shared + {config.n_routed_experts} routed experts, "
          f"top-{config.n_activated_experts}, MoE layers {config.moe_layers}\n")
    print(count_params(config).table(), "\n")
    torch.manual_seed(0)
    model = DeepSeekMoEForCausalLM(config)
    tokens = torch.randint(0, config.vocab_size, (args.batch, args.seq_len + 1))
    start = time.perf_counter()
    out = model(tokens[:, :-1], labels=tokens[:, 1:])
    print(f"forward of {args.batch}x{args.seq_len} tokens in {time.perf_counter() - start:.3f}s: "
          f"logits {tuple(out.logits.shape)}, lm_loss {out.lm_loss.item():.4f} "
          f"(ln V = {torch.log(torch.tensor(float(config.vocab_size))).item():.4f}), "
          + ", ".join(f"{k} {v.item():.5f}" for k, v in out.aux_losses.items()))
    print(expert_load_table(out, config.moe_layers))


if __name__ == "__main__":
    main()
