"""dsmoe on a CUDA GPU against the CPU in float32, or against its own reference path there (the bodies are in
checks.py; test_checks_on_cpu.py runs them on the CPU). Run them with `pytest tests/gpu -m gpu`."""

import pytest
import torch

from dsmoe.kernels.fused import grouped_mm_unavailable
from gpu import checks
from train.tiny import one_step_run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
HOPPER = (9, 0)  # torch._grouped_mm runs bf16 on sm90 and later in every torch this project supports
EP2_RTOL = 1e-4  # float32 on both sides; the gradient all-reduce and CUDA's atomic index_add_ reorder sums


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


def test_bf16_training_step_matches_the_cpu_in_float32(cuda):
    checks.check_training_step(cuda, "bfloat16")


@pytest.mark.parametrize("rows_per_chunk", [None, 300], ids=["one block", "blocks of 300 rows"])
def test_fused_experts_match_the_loop_in_bf16(cuda, monkeypatch, rows_per_chunk):
    why_not = grouped_mm_unavailable("cuda", torch.bfloat16, checks.WIDTH, checks.HIDDEN)
    if why_not is not None:  # then test_auto_expert_kernel checks that the loop runs instead
        pytest.skip(f"the fused op cannot run here: {why_not}")
    if rows_per_chunk is not None:
        monkeypatch.setattr("dsmoe.kernels.fused.ACCELERATOR_ROWS_PER_CHUNK", rows_per_chunk)
    checks.check_fused_matches_loop(cuda)


def test_auto_expert_kernel_is_the_fused_op_on_hopper_else_the_loop(cuda):
    why_not = checks.check_auto_expert_kernel(cuda)
    if torch.cuda.get_device_capability(cuda) >= HOPPER:
        assert why_not is None, why_not


def test_cached_generation_equals_uncached(cuda):
    checks.check_cached_generation(cuda)


def test_eval_on_cuda_equals_the_cpu(cuda, tmp_path_factory):
    checks.check_eval_matches_cpu(one_step_run(tmp_path_factory, "eval"), cuda)


def test_train_on_cuda_in_auto_bf16_then_eval_and_resume_on_the_cpu(tmp_path):
    checks.check_train_then_cpu(tmp_path, "cuda", expected_dtype="bfloat16")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_torchrun_ep2_over_nccl_equals_one_process(tmp_path):
    checks.check_ep2_equals_one_process(tmp_path, "cuda", EP2_RTOL)
