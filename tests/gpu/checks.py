"""The bodies of the GPU checks, each taking the device it checks. The gpu-marked tests beside this file run them on
CUDA; test_gpu_checks_on_cpu.py runs the same bodies on the CPU, so a check is known to work before a GPU runs it.

Each compares what the device computes with the CPU in float32 (or with the device's own reference path), within
the tolerance of the precision the device computes in. bf16 keeps 8 mantissa bits: one rounding is ~4e-3 relative,
and a tiny model's near-tied router scores may send a few tokens to other experts than in float32.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

from dsmoe.config import ModelConfig, TrainConfig
from dsmoe.data import prepare_data, token_byte_lengths
from dsmoe.eval import EvalResult, evaluate_domains
from dsmoe.inference.generate import SamplingConfig, generate_batch
from dsmoe.kernels.fused import grouped_experts, grouped_mm_unavailable, loop_experts, use_grouped_mm
from dsmoe.model.moe import ExpertBatch, expert_kernel_summary, run_experts
from dsmoe.routers import install_router_updates
from dsmoe.runs import RunDir, load_run
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.train.loop import train
from dsmoe.train.optim import build_optimizer
from dsmoe.train.step import accumulate_gradients
from train.tiny import MODEL, cli_env, read_steps, run_config, tiny_model, train_args

LOSS_RTOL = {"float32": 1e-5, "bfloat16": 1e-2}
GRAD_RTOL = {"float32": 1e-4, "bfloat16": 0.15}  # routed experts' gradients move with the tokens a tie re-routes
# step 1 of AdamW moves each weight by about -lr * sign(grad): a gradient near 0 whose sign bf16 flips moves it 2 lr
DELTA_RTOL = {"float32": 1e-3, "bfloat16": 0.35}
STEP_PARAMETERS = ("embed_tokens.weight", "layers.0.attn.q_proj.weight", "layers.1.ffn.router.weight",
                   "layers.1.ffn.experts.gate_up_proj", "lm_head.weight")
KERNEL_RTOL = 2e-2  # a bf16 kernel against the float32 loop: a few roundings of ~4e-3 each
EVAL_RTOL = 1e-4  # float32 on both sides: only the order of the sums differs
N_EXPERTS, TOP_K, HIDDEN, WIDTH, N_TOKENS = 16, 4, 128, 64, 512  # bf16 rows of 128 and 256 bytes: grouped_mm runs


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-30)).item()


# (a) one training step ----------------------------------------------------------------------------------------------

def training_step(model: torch.nn.Module, inputs_BL: torch.Tensor, labels_BL: torch.Tensor, dtype: str
                  ) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One step as `dsmoe train` takes it (accumulate_gradients, then the AdamW build_optimizer makes, with the
    routers' updates): the loss, and each parameter's gradient and change, in float32 on the CPU."""
    optimizer = build_optimizer(model, TrainConfig())
    install_router_updates(optimizer, model)
    before = {name: param.detach().float().cpu() for name, param in model.named_parameters()}
    result = accumulate_gradients(model, inputs_BL, labels_BL, grad_accum=1, dtype=dtype)
    grads = {name: param.grad.float().cpu() for name, param in model.named_parameters()}
    optimizer.step()
    deltas = {name: param.detach().float().cpu() - before[name] for name, param in model.named_parameters()}
    return result.loss, grads, deltas


def check_training_step(device: torch.device, dtype: str) -> None:
    """The same model, batch and step on `device` in `dtype` as on the CPU in float32: the loss, and the gradients
    and changes of a few weights (embedding, attention, router, routed experts, output head)."""
    model = tiny_model(seed=0)
    tokens_BL = torch.randint(0, MODEL["vocab_size"], (4, 33), generator=torch.Generator().manual_seed(0))
    inputs_BL, labels_BL = tokens_BL[:, :-1], tokens_BL[:, 1:]
    expected_loss, expected_grads, expected_deltas = training_step(copy.deepcopy(model), inputs_BL, labels_BL,
                                                                   "float32")
    loss, grads, deltas = training_step(model.to(device), inputs_BL.to(device), labels_BL.to(device), dtype)
    assert abs(loss - expected_loss) <= LOSS_RTOL[dtype] * expected_loss, (loss, expected_loss)
    for name in STEP_PARAMETERS:
        assert rel_error(grads[name], expected_grads[name]) <= GRAD_RTOL[dtype], name
        assert rel_error(deltas[name], expected_deltas[name]) <= DELTA_RTOL[dtype], name


# (b) the fused experts op against its loop twin ---------------------------------------------------------------------

def kernel_inputs(device: torch.device, dtype: torch.dtype, seed: int = 0):
    """(token_index_S, expert_index_S, [x_TD, weight_S, gate_up_EFD, down_EDF]): a random top-k routing of
    N_TOKENS tokens over N_EXPERTS experts."""
    generator = torch.Generator().manual_seed(seed)
    expert_index_TK = torch.rand(N_TOKENS, N_EXPERTS, generator=generator).topk(TOP_K, dim=-1).indices
    token_index_S = torch.arange(N_TOKENS).repeat_interleave(TOP_K)
    inputs = [torch.randn(N_TOKENS, HIDDEN, generator=generator), torch.rand(N_TOKENS * TOP_K, generator=generator),
              torch.randn(N_EXPERTS, 2 * WIDTH, HIDDEN, generator=generator) * HIDDEN ** -0.5,
              torch.randn(N_EXPERTS, HIDDEN, WIDTH, generator=generator) * WIDTH ** -0.5]
    return (token_index_S.to(device), expert_index_TK.reshape(-1).to(device),
            [tensor.to(device, dtype) for tensor in inputs])


def values_and_grads(kernel, token_index_S, expert_index_S, inputs, grad_out_TD) -> list[torch.Tensor]:
    """[out, d/dx, d/dweight, d/dgate_up, d/ddown] of <kernel(...), grad_out>."""
    leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
    out_TD = kernel(leaves[0], token_index_S, expert_index_S, *leaves[1:])
    return [out_TD.detach(), *torch.autograd.grad((out_TD * grad_out_TD).sum(), leaves)]


def check_fused_matches_loop(device: torch.device) -> None:
    """The fused op and the loop in bf16 on `device`, each against the loop in float32 on the same device: the
    output and the gradients of x, the routing weights and both expert weight stacks."""
    token_index_S, expert_index_S, inputs = kernel_inputs(device, torch.bfloat16)
    grad_out_TD = torch.randn(N_TOKENS, HIDDEN, generator=torch.Generator().manual_seed(1)).to(device)
    expected = values_and_grads(loop_experts, token_index_S, expert_index_S, [t.float() for t in inputs], grad_out_TD)
    for kernel in (grouped_experts, loop_experts):
        got = values_and_grads(kernel, token_index_S, expert_index_S, inputs, grad_out_TD.bfloat16())
        for name, actual, reference in zip(("out", "x", "weight", "gate_up", "down"), got, expected):
            assert actual.dtype == torch.bfloat16, (kernel.__name__, name)
            assert rel_error(actual, reference) <= KERNEL_RTOL, (kernel.__name__, name)


def check_auto_expert_kernel(device: torch.device) -> str | None:
    """expert_kernel="auto" in bf16 on `device`: the fused op where grouped_mm_unavailable finds nothing against
    it, else the loop, said with the reason; either way the layer's rows equal the loop's. Returns that reason."""
    why_not = grouped_mm_unavailable(device.type, torch.bfloat16, WIDTH, HIDDEN)
    config = ModelConfig(**{**MODEL, "hidden_size": HIDDEN, "moe_intermediate_size": WIDTH,
                            "n_routed_experts": N_EXPERTS, "n_activated_experts": TOP_K})
    summary = expert_kernel_summary(config, device, torch.bfloat16)
    token_index_S, expert_index_S, (x_TD, weight_S, gate_up_EFD, down_EDF) = kernel_inputs(device, torch.bfloat16)
    batch = ExpertBatch.from_pairs(x_TD, token_index_S, expert_index_S, weight_S, N_EXPERTS)
    auto_TD = run_experts("auto", batch, gate_up_EFD, down_EDF)
    loop_TD = run_experts("loop", batch, gate_up_EFD, down_EDF)
    if why_not is None:
        assert use_grouped_mm("auto", x_TD, gate_up_EFD)
        assert summary == f"expert kernel: fused grouped_mm ({device.type}, bfloat16)"
        assert rel_error(auto_TD, loop_TD) <= KERNEL_RTOL
    else:
        assert not use_grouped_mm("auto", x_TD, gate_up_EFD)
        assert summary == f"expert kernel: loop over experts, the fallback ({why_not})"
        assert torch.equal(auto_TD, loop_TD)  # the fallback is the loop itself
    return why_not


# (c) generation with the KV cache -----------------------------------------------------------------------------------

@torch.no_grad()
def greedy_without_cache(model: torch.nn.Module, prompt: list[int], n_new: int) -> list[int]:
    """n_new greedy tokens, each from a full forward pass over everything so far (no cache, no padding)."""
    ids_1L = torch.tensor([prompt], device=model.lm_head.weight.device)
    for _ in range(n_new):
        ids_1L = torch.cat([ids_1L, model(ids_1L).logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return ids_1L[0, len(prompt):].tolist()


def check_cached_generation(device: torch.device) -> None:
    """Greedy generate_batch on `device` (prompts of three lengths, left-padded into one KV cache) gives each prompt
    the tokens of uncached greedy decoding."""
    model = tiny_model(seed=0).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, MODEL["vocab_size"], (length,), generator=generator).tolist() for length in (5, 9, 16)]
    greedy = SamplingConfig(max_new_tokens=16, temperature=0.0, top_k=None)
    cached = generate_batch(model, prompts, greedy)
    assert cached == [greedy_without_cache(model, prompt, greedy.max_new_tokens) for prompt in prompts]


# (d) evaluation -----------------------------------------------------------------------------------------------------

def evaluate_run_on(run: Path, device: torch.device) -> EvalResult:
    """What `dsmoe eval --run run` scores (the latest checkpoint on the run's validation split), on `device`."""
    loaded = load_run(run)
    data = prepare_data(loaded.config.data, RunDir(run).tokenizer_path, loaded.config.model.vocab_size,
                        reuse_tokenizer=True)
    domains = {domain: data.val.domain_tokens(domain) for domain in data.val.domains}
    return evaluate_domains(loaded.model.to(device), domains, loaded.config.data.seq_len,
                            loaded.config.train.batch_size, token_byte_lengths(loaded.tokenizer))


def check_eval_matches_cpu(run: Path, device: torch.device) -> None:
    on_device, on_cpu = evaluate_run_on(run, device), evaluate_run_on(run, torch.device("cpu"))
    assert on_device.tokens == on_cpu.tokens and on_device.n_bytes == on_cpu.n_bytes
    assert abs(on_device.loss - on_cpu.loss) <= EVAL_RTOL * on_cpu.loss
    assert abs(on_device.bits_per_byte - on_cpu.bits_per_byte) <= EVAL_RTOL * on_cpu.bits_per_byte


# (e) `dsmoe train` end to end, then evaluated and resumed on a machine without a GPU --------------------------------

def run_module_dsmoe(args: list[str], cpu_only: bool = False) -> subprocess.CompletedProcess:
    """`python -m dsmoe ARGS` (this interpreter, this checkout: no console script needed); `cpu_only` hides every
    GPU from it, as on a machine without one."""
    env = {**cli_env(), **({"CUDA_VISIBLE_DEVICES": ""} if cpu_only else {})}
    done = subprocess.run([sys.executable, "-m", "dsmoe", *args], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def final_val(run: Path) -> float:
    return next(record["final_val"] for record in read_metrics(run / "metrics.jsonl") if "final_val" in record)


def check_train_then_cpu(tmp_path: Path, device: str, expected_dtype: str, steps: int = 4) -> None:
    """`dsmoe train` with train.device=`device` and train.dtype auto records `expected_dtype`, and per step its
    throughput and peak memory; its checkpoints then evaluate (to its own final score) and resume on the CPU."""
    run = tmp_path / "run"
    trained = run_module_dsmoe(train_args(tmp_path, run, train__steps=steps, train__save_every=steps // 2,
                                          train__eval_every=0, train__device=device))
    assert f"finished: {steps}/{steps} steps" in trained.stdout
    recorded = tomllib.loads((run / "config.toml").read_text())["train"]
    assert (recorded["device"], recorded["dtype"]) == (device, expected_dtype)
    records = read_steps(run / "metrics.jsonl")
    assert [record["step"] for record in records] == list(range(1, steps + 1))
    assert all(record["peak_memory_mb"] > 0 and record["tokens_per_s"] > 0 for record in records), records

    evaluated = run_module_dsmoe(["eval", "--run", str(run)], cpu_only=True)
    cpu_loss = float(re.search(r"all domains: loss ([0-9.]+)", evaluated.stdout).group(1))
    assert abs(cpu_loss - final_val(run)) <= 1e-3 * final_val(run)  # the eval prints 4 decimals

    resumed = run_module_dsmoe(["train", "--out", str(run), "--resume", "--set", f"train.steps={steps + 2}",
                                "--set", 'train.device="cpu"'], cpu_only=True)
    assert f"finished: {steps + 2}/{steps + 2} steps" in resumed.stdout
    records = read_steps(run / "metrics.jsonl")
    assert [record["step"] for record in records] == list(range(1, steps + 3))
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in records)


# (f) expert parallelism under torchrun --------------------------------------------------------------------------------

def check_ep2_equals_one_process(tmp_path: Path, device: str, tolerance: float, steps: int = 4) -> None:
    """torchrun with parallel.ep=2 (NCCL between GPUs, Gloo between CPUs) over batches of 4 sequences takes the
    steps one process takes accumulating 2 micro-batches of 2: the same losses, and the same final score."""
    from tests.parallel.launch import torchrun_dsmoe
    from tests.parallel.test_torchrun_train import V3_STYLE, final_loss, step_losses

    run = dict(train__steps=steps, train__save_every=0, train__eval_every=0, train__device=device,
               train__dtype="float32", **V3_STYLE)
    done = torchrun_dsmoe(2, train_args(tmp_path, tmp_path / "ep2", parallel__ep=2, **run), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    train(run_config(tmp_path, train__batch_size=2, train__grad_accum=2, **run), tmp_path / "single")
    expected, got = step_losses(tmp_path / "single"), step_losses(tmp_path / "ep2")
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    for step, loss in expected.items():
        assert abs(got[step] - loss) <= tolerance * loss, (step, got[step], loss)
    single_final = final_loss(tmp_path / "single")
    assert abs(final_loss(tmp_path / "ep2") - single_final) <= tolerance * single_final
