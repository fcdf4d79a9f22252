"""/metrics in Prometheus' text format, read with prometheus_client's own parser."""

import json

import pytest

from serve.conftest import API_KEY
from serve.server_process import curl

parser = pytest.importorskip("prometheus_client.parser")

AUTHORIZED = (f"Authorization: Bearer {API_KEY}",)


def scrape(server) -> dict:
    status, _, text = curl(f"{server.url}/metrics", headers=AUTHORIZED)
    assert status == 200
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def test_metrics_count_routed_tokens_per_layer_and_expert_and_time_the_requests(server):
    status, _, _ = curl(f"{server.url}/v1/completions", json.dumps({"prompt": "To be", "max_tokens": 5}), AUTHORIZED)
    assert status == 200
    families = scrape(server)
    routed = {(sample.labels["layer"], sample.labels["expert"]): sample.value
              for sample in families["dsmoe_expert_routed_tokens"].samples if sample.name.endswith("_total")}
    assert {expert for _, expert in routed} == {"0", "1", "2", "3"} and sum(routed.values()) > 0
    for histogram in ("dsmoe_request_latency_seconds", "dsmoe_time_to_first_token_seconds",
                      "dsmoe_inter_token_latency_seconds"):
        count = next(sample.value for sample in families[histogram].samples if sample.name.endswith("_count"))
        assert count >= 1, histogram
    generated = next(sample.value for sample in families["dsmoe_generated_tokens"].samples
                     if sample.name.endswith("_total"))
    assert generated >= 5
    assert {"dsmoe_queue_depth", "dsmoe_running_batch_size"} <= set(families)
