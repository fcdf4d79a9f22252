"""The precision eval, generate and the demo's sample compute in: the run's bf16 only where the device has native bf16
matmuls, float32 elsewhere (the CPU always)."""

import pytest
import torch

from dsmoe.runtime import devices


@pytest.mark.parametrize("trained, native_bf16, expected", [
    ("bfloat16", True, "bfloat16"), ("auto", True, "bfloat16"), ("float32", True, "float32"),
    ("bfloat16", False, "float32"), ("auto", False, "float32")])
def test_a_gpu_computes_in_the_runs_bf16_only_with_native_bf16(trained, native_bf16, expected, monkeypatch):
    monkeypatch.setattr(devices, "device_has_bf16", lambda device: native_bf16)
    assert devices.inference_dtype(trained, torch.device("cuda", 0)) == expected


@pytest.mark.parametrize("trained", ["bfloat16", "float32", "auto"])
def test_the_cpu_computes_in_float32(trained):
    assert devices.inference_dtype(trained, torch.device("cpu")) == "float32"
