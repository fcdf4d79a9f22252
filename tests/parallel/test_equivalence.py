"""Expert and data parallelism on 2 and 4 CPU processes (Gloo) equal the single-process run on the same global
batch: loss, gradients, parameters and AdamW state after 3 optimizer steps (fp32, relative error <= 1e-5),
for softmax + aux loss and sigmoid + bias routing, with and without device-limited routing, plus the edge cases
and resharding. Each world size is one torchrun launch of worker.py (see there), shared by these tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.parallel.launch import torchrun

WORKER = Path(__file__).with_name("worker.py")
TOLERANCE = 1e-5
LAYOUTS = {2: ["ep2_dp1"], 4: ["ep4_dp1", "ep2_dp2"]}
ROUTINGS = ["softmax_aux", "sigmoid_bias", "softmax_aux_device_limited", "sigmoid_bias_device_limited",
            "global_batch_mtp"]
CASES = [(world, layout) for world, layouts in LAYOUTS.items() for layout in layouts]


@pytest.fixture(scope="module", params=[2, 4])
def results(request, tmp_path_factory) -> tuple[int, dict]:
    out = tmp_path_factory.mktemp(f"world{request.param}") / "results.json"
    done = torchrun(request.param, [str(WORKER), str(out)], cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-12000:]
    return request.param, json.loads(out.read_text())


def layouts_of(results) -> list[tuple[str, int]]:
    world, _ = results
    return [(layout, int(layout.split("_")[0].removeprefix("ep"))) for layout in LAYOUTS[world]]


@pytest.mark.parametrize("routing", ROUTINGS)
def test_three_steps_equal_the_single_process_run(results, routing):
    for layout, _ in layouts_of(results):
        errors = results[1][f"{layout}/{routing}"]
        for quantity in ("loss", "grad", "grad_norm", "param", "optimizer"):
            assert errors[quantity] <= TOLERANCE, (layout, routing, quantity, errors[quantity])


@pytest.mark.parametrize("routing", ["sigmoid_bias", "sigmoid_bias_device_limited"])
def test_every_rank_keeps_the_same_aux_loss_free_bias(results, routing):
    for layout, _ in layouts_of(results):
        assert results[1][f"{layout}/{routing}"]["bias_same_on_every_rank"], layout


def max_ranks_per_token(traffic: list[list[dict]]) -> int:
    return max(layer["max_ranks_per_token"] for rank in traffic for layer in rank)


def test_device_limited_routing_sends_a_token_to_at_most_M_ranks(results):
    """DeepSeek-V2 Sec. 2.2.2 on real devices: one expert group per ep rank, topk_group = M = ep / 2, measured on
    the all-to-all itself; without the limit some token reaches more ranks (so the check can fail)."""
    for layout, ep in layouts_of(results):
        for routing in ("softmax_aux", "sigmoid_bias"):
            assert max_ranks_per_token(results[1][f"{layout}/{routing}_device_limited"]["traffic"]) <= ep // 2
            assert max_ranks_per_token(results[1][f"{layout}/{routing}"]["traffic"]) > ep // 2


def test_a_rank_whose_experts_get_no_tokens(results):
    """Every expert off rank 0's block disabled: the others receive nothing, rank 0 everything; still exact."""
    for layout, ep in layouts_of(results):
        result = results[1][f"{layout}/one_rank_gets_everything"]
        for quantity in ("loss", "grad", "param", "optimizer"):
            assert result[quantity] <= TOLERANCE, (layout, quantity)
        for rank, layers in enumerate(result["traffic"]):
            for layer in layers:
                holds_block_0 = rank % ep == 0  # rank = dp index * ep + ep index
                assert (layer["tokens_received"] > 0) == holds_block_0, (layout, rank, layer)
                assert (layer["tokens_sent"] > 0) != holds_block_0, (layout, rank, layer)


def test_single_token_decoding_steps(results):
    """T = 1 per rank through the KV cache: the logits of the single-process model."""
    for layout, _ in layouts_of(results):
        assert results[1][f"{layout}/decoding"]["logits"] <= TOLERANCE, layout


def test_resharding_round_trips(results):
    """A layout's gathered weights loaded into another and gathered back are bitwise the same; its logits there
    agree to fp32 rounding, and bitwise once back in the first layout."""
    world, values = results
    trips = {name: value for name, value in values.items() if name.startswith("reshard/")}
    assert len(trips) == (2 if world == 4 else 1)
    for name, trip in trips.items():
        assert trip["weights_equal"] and trip["round_trip_logits_equal"], name
        assert trip["logits"] <= TOLERANCE, name
