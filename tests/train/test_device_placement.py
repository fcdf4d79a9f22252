"""Everything a training step computes follows the device it is asked for, never the default device.

No GPU is needed to check it: the steps run on the CPU under torch.set_default_device("meta"), so a tensor made
without naming its device (a zeros, an arange, a generator, a loss accumulator) lands on meta, where no value can
be read, and the run fails. Host-side work (the data order, the weights' seeded init, the reported losses) names
the CPU itself. A scan adds that the device-side code (model, routers, kernels) never pins a tensor to the CPU."""

import ast
from pathlib import Path

import pytest
import torch

import dsmoe
from dsmoe.parallel.ranks import SingleProcess
from dsmoe.registry import ROUTERS
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.train.loop import train
from train.tiny import run_config

SRC = Path(dsmoe.__file__).parent
DEVICE_SIDE = ("model", "routers", "kernels")
HOST_BY_DESIGN = {  # device-side code that makes a tensor on the CPU on purpose, and why
    "routers/hash_router.py": "the hash table is drawn on the host from a fixed seed: every device gets the same",
    "routers/hash_gate.py": "so is the hash layers' token-id table (tid2eid)",
}
ROUTER_SETTINGS = {  # what each router needs at the tiny test size
    "switch": {"model.n_activated_experts": 1}, "gshard": {"model.n_activated_experts": 2},
    "noisy_topk": {"model.n_activated_experts": 2},
}


@pytest.fixture
def default_device_meta():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


@pytest.mark.parametrize("router", sorted(ROUTERS))
def test_a_run_never_computes_on_the_default_device(tmp_path, default_device_meta, router):
    changes = {key.replace(".", "__"): value for key, value in ROUTER_SETTINGS.get(router, {}).items()}
    config = run_config(tmp_path, model__router=router, train__steps=2, train__device="cpu", train__eval_every=0,
                        **changes)
    result = train(config, tmp_path / "run")
    assert result.step == 2 and result.final_eval.loss > 0
    records = [record for record in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in record]
    assert len(records) == 2 and all(record["peak_memory_mb"] > 0 for record in records)


def test_bfloat16_steps_never_compute_on_the_default_device(tmp_path, default_device_meta):
    config = run_config(tmp_path, train__steps=2, train__device="cpu", train__dtype="bfloat16", train__eval_every=0)
    assert train(config, tmp_path / "run").final_eval.loss > 0


def test_the_model_and_its_batches_land_on_the_device_asked_for():
    ranks = SingleProcess(torch.device("meta"))
    model = ranks.prepare(dsmoe.DeepSeekMoEForCausalLM(dsmoe.presets.get("tiny-v3")))
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    assert tensors and {name for name, tensor in tensors.items() if tensor.device.type != "meta"} == set()


def cpu_pinning(relative: str, source: str) -> list[str]:
    """Where code pins a tensor to the CPU: a device="cpu" argument, torch.device("cpu") or a .cpu() call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "device" and isinstance(node.value, ast.Constant) \
                and node.value.value == "cpu":
            found.append(f'{relative}:{node.lineno} device="cpu"')
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cpu":
            found.append(f"{relative}:{node.lineno} .cpu()")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "device" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "cpu":
            found.append(f'{relative}:{node.lineno} torch.device("cpu")')
    return sorted(found)


def test_device_side_code_never_pins_a_tensor_to_the_cpu():
    pinned = [place for package in DEVICE_SIDE for path in sorted((SRC / package).rglob("*.py"))
              if (relative := str(path.relative_to(SRC))) not in HOST_BY_DESIGN
              for place in cpu_pinning(relative, path.read_text())]
    assert pinned == []


def test_the_scan_finds_each_way_of_pinning():
    source = 'x = torch.zeros(3, device="cpu")\ny = x.cpu()\nz = torch.device("cpu")\nok = x.device.type == "cpu"\n'
    assert cpu_pinning("model/x.py", source) == ['model/x.py:1 device="cpu"', "model/x.py:2 .cpu()",
                                                  'model/x.py:3 torch.device("cpu")']
