"""The GPU checks' bodies (checks.py) on the CPU: each runs and passes here before a GPU runs it in
test_on_cuda.py. The CPU computes bf16 by emulation where it has no native bf16, which is slow but the same
arithmetic."""

import pytest
import torch

from dsmoe.kernels.fused import grouped_mm_unavailable
from gpu import checks
from train.tiny import one_step_run

CPU = torch.device("cpu")


def test_training_step_check_passes_in_bf16_on_the_cpu():
    checks.check_training_step(CPU, "bfloat16")


def test_fused_experts_check_passes_on_the_cpu():
    why_not = grouped_mm_unavailable("cpu", torch.bfloat16, checks.WIDTH, checks.HIDDEN)
    if why_not is not None:
        pytest.skip(f"the fused op cannot run on this CPU: {why_not}")
    checks.check_fused_matches_loop(CPU)


def test_auto_expert_kernel_check_passes_on_the_cpu():
    checks.check_auto_expert_kernel(CPU)


def test_cached_generation_check_passes_on_the_cpu():
    checks.check_cached_generation(CPU)


def test_eval_check_passes_on_the_cpu(tmp_path_factory):
    checks.check_eval_matches_cpu(one_step_run(tmp_path_factory, "eval"), CPU)


def test_train_then_cpu_check_passes_on_the_cpu(tmp_path):
    checks.check_train_then_cpu(tmp_path, "cpu", expected_dtype="float32")


def test_torchrun_ep2_check_passes_over_gloo_on_the_cpu(tmp_path):
    checks.check_ep2_equals_one_process(tmp_path, "cpu", tolerance=1e-5)
