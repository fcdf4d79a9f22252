"""Run under torchrun by the parallel tests: every scenario of this world size against the single-process run,
the results (relative errors, traffic) written by rank 0 as JSON to the path in argv[1].

One launch per world size shares its process group across all scenarios (a launch costs seconds of start-up).
Each scenario builds the same model twice from one seed: `reference` in this process alone, `parallel` through
dsmoe.parallel.parallelize; both train on the same global batches with the library's own step functions.
"""

from __future__ import annotations

import gc
import json
import os
import sys

import torch
import torch.distributed as dist

from dsmoe.config import ModelConfig
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.parallel import ParallelConfig
from dsmoe.parallel.grad_norm import clip_grad_norm
from dsmoe.parallel.mesh import ParallelMesh, init_parallel
from dsmoe.parallel.parallelize import moe_layers, parallelize
from dsmoe.parallel.state import (expert_block_names, full_tensor, gathered_model_state, gathered_optimizer_state,
                                  load_model_state, local_optimizer_state)
from dsmoe.routers import install_router_updates
from dsmoe.config.train_config import TrainConfig
from dsmoe.train.optim import build_optimizer
from dsmoe.train.step import accumulate_gradients, accumulate_micro_batches, rank_micro_batches

VOCAB, SEQ = 64, 8
BASE = dict(hidden_size=32, n_layers=3, n_heads=2, vocab_size=VOCAB, max_seq_len=16, intermediate_size=64,
            moe_intermediate_size=16, n_routed_experts=8, n_activated_experts=3, n_shared_experts=1,
            first_k_dense_replace=1)
ROUTINGS = {  # the model variants every layout runs
    "softmax_aux": dict(router="softmax_topk", aux_loss_alpha=0.01),
    "sigmoid_bias": dict(router="sigmoid_topk", bias_update_speed=0.01, aux_loss_alpha=0.0),
    "softmax_aux_device_limited": dict(router="softmax_topk", aux_loss_alpha=0.01, topk_group=1,
                                       device_balance_alpha=0.01, comm_balance_alpha=0.01),
    "sigmoid_bias_device_limited": dict(router="sigmoid_topk", bias_update_speed=0.01, aux_loss_alpha=0.0,
                                        topk_group=1, comm_balance_alpha=0.01),
    "global_batch_mtp": dict(router="softmax_topk", aux_loss_alpha=0.01, balance_scope="global_batch",
                             n_mtp_modules=1),
    "sinkhorn": dict(router="sinkhorn", z_loss_coef=0.001),  # each rank's micro-batch is balanced, as alone
}
LAYOUTS = {2: [(2, 1)], 4: [(4, 1), (2, 2)]}
TRAIN = TrainConfig(lr=1.08e-3, weight_decay=0.1)  # DeepSeekMoE's peak lr at 2B (Sec. 4.1.2)
STEPS = 3


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (0 when both are 0)."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm()) if b.norm() > 0 else float(a.norm())


def worst(pairs) -> float:
    return max((rel_error(a, b) for a, b in pairs), default=0.0)


def model_config(routing: dict, ep: int, **changes) -> ModelConfig:
    # device-limited: one group per ep rank, a token's experts on at most M = ep / 2 of them (DeepSeek-V2's M)
    limited = {"n_group": ep, "n_devices": ep, "topk_group": ep // 2} if "topk_group" in routing else {}
    return ModelConfig(**{**BASE, **routing, **limited, **changes})


def twins(config: ModelConfig, mesh: ParallelMesh, layout: ParallelConfig):
    torch.manual_seed(0)
    reference = DeepSeekMoEForCausalLM(config)
    torch.manual_seed(0)
    parallel = parallelize(DeepSeekMoEForCausalLM(config), mesh, layout)
    return reference, parallel


def full_gradients(model, mesh) -> dict[str, torch.Tensor]:
    experts = expert_block_names(model)
    return {name: full_tensor(param.grad, name in experts, mesh) for name, param in model.named_parameters()}


def batch(step: int, n_sequences: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    tokens = torch.randint(0, VOCAB, (n_sequences, SEQ + 1), generator=generator)
    return tokens[:, :-1], tokens[:, 1:]


def reference_step(model, inputs, labels, grad_accum: int, world: int):
    """The single process running the parallel step's grad_accum * world micro-batches, in rank order."""
    pieces = [piece for rank in range(world) for piece in rank_micro_batches(inputs, labels, grad_accum, world, rank)]
    total = (labels != -100).sum()
    return accumulate_micro_batches(model, pieces, total, grad_accum * world, "float32")


def train_twins(reference, parallel, mesh, n_sequences: int, grad_accum: int, steps: int = STEPS) -> dict:
    world, rank = dist.get_world_size(), dist.get_rank()
    ref_opt, par_opt = build_optimizer(reference, TRAIN), build_optimizer(parallel, TRAIN)
    install_router_updates(ref_opt, reference)
    install_router_updates(par_opt, parallel, reduce_sum=dist.all_reduce)
    errors = {"loss": 0.0, "grad": 0.0, "grad_norm": 0.0}
    for step in range(steps):
        inputs, labels = batch(step, n_sequences)
        ref_result = reference_step(reference, inputs, labels, grad_accum, world)
        par_result = accumulate_gradients(parallel, inputs, labels, grad_accum, "float32", world, rank,
                                          dist.all_reduce)
        errors["loss"] = max(errors["loss"], abs(par_result.loss - ref_result.loss) / abs(ref_result.loss))
        ref_norm = float(torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0))
        par_norm = clip_grad_norm(parallel, 1.0)
        errors["grad_norm"] = max(errors["grad_norm"], abs(par_norm - ref_norm) / ref_norm)
        ref_grads = dict(reference.named_parameters())
        errors["grad"] = max(errors["grad"], worst((grad, ref_grads[name].grad)
                                                   for name, grad in full_gradients(parallel, mesh).items()))
        ref_opt.step(), par_opt.step()
        ref_opt.zero_grad(), par_opt.zero_grad()
    ref_state = reference.state_dict()
    gathered = gathered_model_state(parallel, mesh)
    errors["param"] = worst((value, ref_state[name]) for name, value in gathered.items())
    errors["optimizer"] = optimizer_error(ref_opt, par_opt, parallel, mesh)
    errors["bias_same_on_every_rank"] = biases_agree(parallel)
    return errors


def optimizer_error(ref_opt, par_opt, parallel, mesh) -> float:
    gathered, reference = gathered_optimizer_state(par_opt, parallel, mesh), ref_opt.state_dict()
    return worst((value, reference["state"][index][key]) for index, entries in gathered["state"].items()
                 for key, value in entries.items() if value.dim())


def biases_agree(model) -> bool:
    """Every rank holds the same aux-loss-free bias (summed loads, one update)."""
    agree = True
    for moe in moe_layers(model):
        bias = getattr(moe.router, "expert_bias", None)
        if bias is not None:
            gathered = [torch.empty_like(bias) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, bias)
            agree &= all(torch.equal(gathered[0], other) for other in gathered)
    return bool(agree)


def traffic_of(model) -> list[dict]:
    out = []
    for moe in moe_layers(model):
        traffic = moe.dispatcher.traffic
        out.append({"tokens_received": traffic.tokens_received, "max_ranks_per_token": traffic.max_ranks_per_token,
                    "tokens_sent": traffic.tokens_sent})
        traffic.reset()
    return out


def one_rank_gets_everything(mesh, layout) -> dict:
    """Every expert but rank 0's disabled: the other ranks' experts receive no tokens, rank 0 all of them."""
    per_rank = BASE["n_routed_experts"] // layout.ep
    config = model_config(ROUTINGS["softmax_aux"], layout.ep, n_activated_experts=min(per_rank, 3))
    reference, parallel = twins(config, mesh, layout)
    for model in (reference, parallel):
        for moe in moe_layers(model):
            moe.router.disable_experts(list(range(per_rank, config.n_routed_experts)))
    result = train_twins(reference, parallel, mesh, n_sequences=2 * dist.get_world_size(), grad_accum=1, steps=1)
    result["traffic"] = gather_traffic(parallel)
    return result


def gather_traffic(model) -> list:
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, traffic_of(model))
    return everyone


def decoding_steps(mesh, layout) -> dict:
    """T = 1 per rank and step through the KV cache: each rank decodes its own prompt."""
    config = model_config(ROUTINGS["softmax_aux"], layout.ep)
    reference, parallel = twins(config, mesh, layout)
    reference.eval(), parallel.eval()
    prompt = batch(dist.get_rank(), 1)[0]
    errors = []
    ref_cache, par_cache = reference.new_cache(), parallel.new_cache()
    with torch.no_grad():
        for position in range(prompt.shape[1]):
            token = prompt[:, position:position + 1]
            errors.append(rel_error(parallel(token, cache=par_cache).logits, reference(token, cache=ref_cache).logits))
    return {"logits": max(errors)}


def resharded(mesh, layout, other_layout, other_mesh) -> dict:
    """A trained layout's gathered weights loaded into another layout and gathered back: bitwise the same
    tensors; the other layout's logits equal to fp32 rounding (its experts' outputs are summed over other ranks)
    and, loaded back into the first layout, bitwise the first's logits."""
    config = model_config(ROUTINGS["sigmoid_bias"], layout.ep)
    reference, parallel = twins(config, mesh, layout)
    train_twins(reference, parallel, mesh, n_sequences=dist.get_world_size(), grad_accum=1, steps=1)
    weights = gathered_model_state(parallel, mesh)
    torch.manual_seed(1)
    other = parallelize(DeepSeekMoEForCausalLM(config), other_mesh, other_layout)
    load_model_state(other, weights, other_mesh)
    torch.manual_seed(2)
    back = parallelize(DeepSeekMoEForCausalLM(config), mesh, layout)
    load_model_state(back, gathered_model_state(other, other_mesh), mesh)
    inputs = batch(7, dist.get_world_size())[0].tensor_split(dist.get_world_size())[dist.get_rank()]
    with torch.no_grad():
        logits, other_logits, back_logits = (model(inputs).logits for model in (parallel, other, back))
    again = gathered_model_state(back, mesh)
    return {"logits": rel_error(other_logits, logits), "round_trip_logits_equal": torch.equal(back_logits, logits),
            "weights_equal": all(torch.equal(again[name], value) for name, value in weights.items())}


def main(out_path: str) -> None:
    world = int(os.environ["WORLD_SIZE"])
    results, meshes = {}, {}
    for ep, dp in LAYOUTS[world]:
        layout = ParallelConfig(ep=ep, dp=dp)
        mesh = meshes[(ep, dp)] = init_parallel(layout)
        name = f"ep{ep}_dp{dp}"
        for routing_name, routing in ROUTINGS.items():
            reference, parallel = twins(model_config(routing, ep), mesh, layout)
            uneven = routing_name.startswith("softmax_aux")  # 2 * world + 1 sequences: some ranks get one more
            results[f"{name}/{routing_name}"] = train_twins(reference, parallel, mesh, 2 * world + uneven,
                                                            grad_accum=2 if routing_name == "global_batch_mtp" else 1)
            results[f"{name}/{routing_name}"]["traffic"] = gather_traffic(parallel)
        results[f"{name}/one_rank_gets_everything"] = one_rank_gets_everything(mesh, layout)
        results[f"{name}/decoding"] = decoding_steps(mesh, layout)
    layouts = list(meshes)
    for source in layouts:
        target = layouts[-1] if source != layouts[-1] else layouts[0]
        results[f"reshard/ep{source[0]}_dp{source[1]}->ep{target[0]}_dp{target[1]}"] = resharded(
            meshes[source], ParallelConfig(*source), ParallelConfig(*target), meshes[target])
    if dist.get_rank() == 0:
        with open(out_path, "w") as handle:
            json.dump(results, handle, indent=1)
    meshes.clear()
    gc.collect()  # as ParallelRanks.close: the models' cycles freed before the process groups, not at exit
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
