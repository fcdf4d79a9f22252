"""Where a command computes, and in what precision: `--device` / `train.device` and `train.dtype` resolved once,
before any work, to what this machine has.

    auto      CUDA if available (torchrun: each rank its LOCAL_RANK GPU), else MPS if available, else the CPU
    cpu       the CPU
    cuda      the current CUDA device (cuda:0 unless set otherwise)
    cuda:N    CUDA device N
    mps       Apple's Metal GPU

A device that is not here is a ValueError naming it and what is available, so a command fails in one line before
it reads data or writes anything.
"""

from __future__ import annotations

import contextlib
import functools
import re
import resource
import sys
from pathlib import Path

import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags with native bf16 matmuls (elsewhere bf16 is emulated)


def is_device_spec(value: object) -> bool:
    """Whether `value` names a device in the form --device and train.device accept (present or not)."""
    return isinstance(value, str) and DEVICE_SPEC.fullmatch(value) is not None


def mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The devices this process can use, as --device names them."""
    cuda = [f"cuda:{index}" for index in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *cuda, *(["mps"] if mps_available() else [])]


def resolve_device(spec: str | torch.device, name: str = "--device") -> torch.device:
    """The torch.device `spec` names on this machine (a torch.device is checked the same way); a malformed or absent
    one is a ValueError naming `name`, the value and what is available."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not is_device_spec(spec):
        raise ValueError(f"{name}={spec!r} is not a device: choose {DEVICE_CHOICES}")
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else \
            torch.device("mps" if mps_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"{name}={spec!r}: no such device here (available: {', '.join(available_devices())})")
    if device.type == "mps" and not mps_available():
        raise ValueError(f"{name}={spec!r}: no such device here (available: {', '.join(available_devices())})")
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_dtype(dtype: str, device: torch.device, name: str = "train.dtype") -> str:
    """The compute dtype `dtype` means on `device`: "auto" is bfloat16 on a GPU with bf16 matmuls, else float32. A
    bf16 request where the device has none (a CUDA GPU before Ampere) is a ValueError; on a CPU without native bf16
    it is allowed, and said once on stderr (emulated bf16 runs slower than float32 there)."""
    if dtype == "auto":
        return "bfloat16" if device_has_bf16(device) else "float32"
    if dtype == "bfloat16" and device.type == "cuda" and not device_has_bf16(device):
        raise ValueError(f"{name}='bfloat16' needs a GPU with bf16 matmuls; {torch.cuda.get_device_name(device)} "
                         "has none: use float32")
    if dtype == "bfloat16" and device.type == "cpu" and not cpu_has_native_bf16():
        say_once(f"note: {name}='bfloat16' on a CPU without native bf16 ({' or '.join(FAST_BF16_CPU_FLAGS)}) runs "
                 "emulated, slower than float32")
    return dtype


def inference_dtype(trained_dtype: str, device: torch.device) -> str:
    """The dtype eval and generate compute in on `device` for a run trained in `trained_dtype`: bfloat16 (autocast)
    where the run trained in it (or "auto") and the device has native bf16 matmuls, else float32 (always on the CPU,
    where it is exact and, without native bf16, the faster)."""
    return "bfloat16" if trained_dtype in ("auto", "bfloat16") and device_has_bf16(device) else "float32"


def autocast_context(dtype: str, device: torch.device):
    """Matmuls in bf16 under torch.autocast for dtype "bfloat16" (weights stay as they are); nothing for float32."""
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_has_bf16(device: torch.device) -> bool:
    """Whether "auto" picks bf16 on `device`: a GPU with native bf16 matmuls (never the CPU, where fp32 is the
    default even with AVX512-BF16 or AMX: an explicit bfloat16 uses them)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "mps":
        return True
    return False


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU advertises native bf16 instructions (read from /proc/cpuinfo; elsewhere False)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in FAST_BF16_CPU_FLAGS)


@functools.cache
def say_once(message: str) -> None:
    """Print `message` to stderr the first time it is said in this process."""
    print(message, file=sys.stderr)


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`batch` on `device`; to a CUDA GPU through pinned host memory without blocking, so the copy overlaps the
    work already queued."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a GPU, so that a wall-clock time covers it (the CPU computes as it is called)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring a CUDA device's peak allocation afresh (the CPU's peak resident size cannot restart)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """MiB at the peak: the tensors allocated on a CUDA device since reset_peak_memory, else the process's peak
    resident memory (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
