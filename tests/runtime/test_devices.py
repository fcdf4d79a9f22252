"""--device and train.device resolve to what the machine has, or fail in one line naming the value and what is there;
train.dtype "auto" is bf16 only on a GPU with native bf16; bf16 is refused on a GPU without it and said once on a
CPU without it. The CUDA and MPS cases run here by faking what torch reports about the machine."""

import pytest
import torch

from dsmoe.runtime import devices


@pytest.fixture
def one_cuda_gpu(monkeypatch):
    """What torch reports on a machine with one CUDA GPU (no MPS)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(devices, "mps_available", lambda: False)


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)


@pytest.mark.parametrize("spec, expected", [("auto", "cuda:0"), ("cuda", "cuda:0"), ("cuda:0", "cuda:0"),
                                            ("cpu", "cpu")])
def test_a_machine_with_one_gpu_resolves_each_name(one_cuda_gpu, spec, expected):
    assert devices.resolve_device(spec) == torch.device(expected)


def test_a_gpu_past_the_last_is_refused_naming_what_is_there(one_cuda_gpu):
    with pytest.raises(ValueError, match=r"^--device='cuda:7': no such device here \(available: cpu, cuda:0\)$"):
        devices.resolve_device("cuda:7")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "mps"])
def test_a_cpu_only_machine_refuses_every_gpu(cpu_only, spec):
    with pytest.raises(ValueError, match=rf"^train\.device='{spec}': no such device here \(available: cpu\)$"):
        devices.resolve_device(spec, "train.device")


def test_auto_is_the_cpu_on_a_cpu_only_machine_and_mps_where_it_is_the_only_gpu(cpu_only, monkeypatch):
    assert devices.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:", "cuda:-1", "CPU", "", 0])
def test_a_name_that_is_no_device_lists_the_choices(spec):
    assert not devices.is_device_spec(spec)
    with pytest.raises(ValueError, match=r"is not a device: choose auto, cpu, cuda, cuda:N or mps$"):
        devices.resolve_device(spec)


@pytest.mark.parametrize("native_bf16, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_is_bf16_on_a_gpu_with_native_bf16(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16)
    assert devices.resolve_dtype("auto", torch.device("cuda", 0)) == expected


def test_auto_dtype_is_float32_on_the_cpu():
    assert devices.resolve_dtype("auto", torch.device("cpu")) == "float32"


def test_bf16_on_a_gpu_without_it_is_refused_naming_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ValueError, match=r"^train\.dtype='bfloat16' needs a GPU with bf16 matmuls; Tesla T4 has none"):
        devices.resolve_dtype("bfloat16", torch.device("cuda", 0))


def test_bf16_on_a_cpu_without_it_is_allowed_and_said_once(monkeypatch, capsys):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    devices.say_once.cache_clear()
    assert [devices.resolve_dtype("bfloat16", torch.device("cpu")) for _ in range(3)] == ["bfloat16"] * 3
    assert capsys.readouterr().err.count("runs emulated, slower than float32") == 1


def test_bf16_on_a_cpu_with_it_says_nothing(monkeypatch, capsys):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    devices.say_once.cache_clear()
    assert devices.resolve_dtype("bfloat16", torch.device("cpu")) == "bfloat16"
    assert capsys.readouterr().err == ""
