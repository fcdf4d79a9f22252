"""The server's Prometheus metrics: latencies observed as requests run, and the engine's state (routed tokens per
MoE layer and expert, queue depth, running batch) read from it at each scrape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dsmoe.serve.engine import Engine
from dsmoe.serve.stream import Event, SequenceStream, TokenEvent

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class EngineCollector:
    """What the engine holds now, read at scrape time."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        load = self.engine.load.snapshot()
        routed = CounterMetricFamily("dsmoe_expert_routed_tokens", "Token-expert assignments the router made, per "
                                     "MoE layer and routed expert, over every forward", labels=["layer", "expert"])
        for layer, counts in zip(load.moe_layers, load.tokens_per_expert):
            for expert, count in enumerate(counts):
                routed.add_metric([str(layer), str(expert)], count)
        yield routed
        yield GaugeMetricFamily("dsmoe_queue_depth", "Sequences waiting for a batch slot", value=self.engine.n_waiting)
        yield GaugeMetricFamily("dsmoe_running_batch_size", "Sequences decoding together",
                                value=self.engine.n_running)


class ServerMetrics:
    """One registry per server (so two servers in one process do not share counters)."""

    def __init__(self, engine: Engine):
        self.registry = CollectorRegistry()
        self.request_latency = Histogram("dsmoe_request_latency_seconds", "Completion requests, arrival to last byte",
                                         buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.time_to_first_token = Histogram("dsmoe_time_to_first_token_seconds", "Request arrival to a choice's "
                                             "first token", buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.inter_token_latency = Histogram("dsmoe_inter_token_latency_seconds", "Between consecutive tokens of a "
                                             "choice", buckets=TOKEN_BUCKETS_S, registry=self.registry)
        self.generated_tokens = Counter("dsmoe_generated_tokens", "Tokens sampled for completions",
                                        registry=self.registry)
        self.requests = Counter("dsmoe_requests", "Requests answered, by endpoint and HTTP status",
                                ["endpoint", "status"], registry=self.registry)
        self.registry.register(EngineCollector(engine))
        self.generated_total = 0  # the counter's value, for the live page (prometheus_client does not expose it)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def timed(self, stream: SequenceStream, arrived: float) -> AsyncIterator[Event]:
        """The stream's events, observing time to first token, inter-token latency and the tokens generated."""
        last = None
        async for event in stream:
            if isinstance(event, TokenEvent):
                now = time.monotonic()
                if last is None:
                    self.time_to_first_token.observe(now - arrived)
                else:
                    self.inter_token_latency.observe(now - last)
                self.generated_tokens.inc()
                self.generated_total += 1
                last = now
            yield event
