"""Load on a running `dsmoe serve`: many streamed completions at a fixed concurrency, timed from the client side
(requests/s, generated tokens/s, time to first token, inter-token latency, request latency).

    dsmoe serve --run runs/mine --max-batch 16 &                           # the server under test
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 128 --concurrency 16
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --concurrency 1    # one request at a time

Prompts are random token ids (`--prompt-tokens` each), sampled at temperature 1; a choice may end early at the EOS
token, so tokens/s counts what was generated (the usage of each stream). Time to first text and the gaps between
text chunks are what a client sees: text held back (a partial character, a possible stop string) arrives later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field

import httpx


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None, help="the server's --api-key, if it has one")
    parser.add_argument("--requests", type=int, default=64, help="completions sent in all")
    parser.add_argument("--concurrency", type=int, default=8, help="completions in flight at once")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=256, help="prompt token ids are drawn from [0, vocab)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


@dataclass
class Timings:
    """One request, from the client's side: seconds from sending to each streamed chunk with text, and the end."""

    chunks_s: list[float] = field(default_factory=list)
    latency_s: float = 0.0
    tokens: int = 0


async def one_request(client: httpx.AsyncClient, args: argparse.Namespace, prompt: list[int], seed: int) -> Timings:
    body = {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 1.0, "seed": seed, "stream": True,
            "stream_options": {"include_usage": True}}
    timings, started = Timings(), time.perf_counter()
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk.get("usage"):
                timings.tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"]:
                timings.chunks_s.append(time.perf_counter() - started)
    timings.latency_s = time.perf_counter() - started
    return timings


async def run_load(args: argparse.Namespace) -> tuple[list[Timings], float]:
    rng = random.Random(args.seed)
    prompts = [[rng.randrange(args.vocab) for _ in range(args.prompt_tokens)] for _ in range(args.requests)]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limit = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=600) as client:
        async def limited(number: int) -> Timings:
            async with limit:
                return await one_request(client, args, prompts[number], args.seed + number)

        started = time.perf_counter()
        results = await asyncio.gather(*(limited(number) for number in range(args.requests)))
        return results, time.perf_counter() - started


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {pick(0.5) * 1e3:8.1f} ms   p90 {pick(0.9) * 1e3:8.1f} ms   p99 {pick(0.99) * 1e3:8.1f} ms"


def main() -> None:
    args = parse_args()
    results, wall_s = asyncio.run(run_load(args))
    tokens = sum(result.tokens for result in results)
    first_chunks = [result.chunks_s[0] for result in results if result.chunks_s]
    gaps = [later - earlier for result in results for earlier, later in zip(result.chunks_s, result.chunks_s[1:])]
    print(f"{args.requests} requests, concurrency {args.concurrency}, {args.prompt_tokens}-token prompts, "
          f"max_tokens {args.max_tokens}: {wall_s:.2f} s")
    print(f"requests/s                 {args.requests / wall_s:10.2f}")
    print(f"generated tokens/s         {tokens / wall_s:10.1f}   ({tokens} tokens)")
    print(f"time to first text         {percentiles(first_chunks)}")
    print(f"between text chunks        {percentiles(gaps)}   (mean {statistics.fmean(gaps or [0]) * 1e3:.1f} ms)")
    print(f"request latency            {percentiles([result.latency_s for result in results])}")


if __name__ == "__main__":
    main()
