"""A [parallel] layout the model or the batch cannot be split into is refused at config construction, naming the
fields, before any process starts work; so is a single device for the ranks of a torchrun job."""

import pytest

from dsmoe.parallel.ranks import rank_device_type
from dsmoe.runs import RunConfig

REFUSALS = [
    (["parallel.ep=3"], "parallel.ep=3 does not divide model.n_routed_experts=16"),
    (["parallel.ep=2", "model.router=\"soft_moe\""], "model.router='soft_moe' cannot run expert-parallel"),
    (["parallel.ep=2", "model.n_devices=4"], "model.n_devices=4 must equal parallel.ep=2"),
    (["parallel.ep=4", "parallel.dp=2", "train.batch_size=4"],
     "train.batch_size=4 is smaller than parallel.ep * parallel.dp = 8"),
]


@pytest.mark.parametrize("overrides, message", REFUSALS, ids=[message[:30] for _, message in REFUSALS])
def test_a_layout_that_does_not_fit_is_refused_naming_the_fields(overrides, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        RunConfig.load(None, overrides)


def test_layouts_that_fit():
    config = RunConfig.load(None, ["parallel.ep=4", "parallel.dp=2", "model.n_devices=4", "train.batch_size=8"])
    assert (config.parallel.ep, config.parallel.dp, config.parallel.world_size) == (4, 2, 8)
    assert "[parallel]" in config.to_toml() and RunConfig.from_dict(config.to_dict()) == config
    dense = RunConfig.load(None, ["model.n_routed_experts=0", "parallel.ep=3", "train.batch_size=3"])
    assert dense.parallel.ep == 3  # no MoE layer: nothing to divide


@pytest.mark.parametrize("device", ["cuda:1", "mps"])
def test_a_single_device_is_refused_under_torchrun(device):
    with pytest.raises(ValueError, match=rf"train\.device='{device}' names one device, but under torchrun each rank "
                                         "takes its LOCAL_RANK GPU: use auto, cuda or cpu"):
        rank_device_type(device)


def test_under_torchrun_auto_is_the_cpu_without_cuda():
    assert rank_device_type("auto") == rank_device_type("cpu") == "cpu"
