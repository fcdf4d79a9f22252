"""/v1/completions through the official openai client against a real `dsmoe serve` process (and the load
benchmark against it)."""

import subprocess
import sys
from pathlib import Path

import pytest

from serve.conftest import API_KEY, MODEL_NAME
from train.tiny import run_dsmoe

openai = pytest.importorskip("openai")

PROMPT = "ROMEO: "


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def greedy(client, prompt=PROMPT, **fields):
    return client.completions.create(model=MODEL_NAME, prompt=prompt, temperature=0, **fields)


def test_a_greedy_completion_is_what_dsmoe_generate_prints(client, served_run):
    answer = greedy(client, max_tokens=12)
    printed = run_dsmoe(["generate", "--run", str(served_run), "--prompt", PROMPT, "--temperature", "0",
                         "--max-new-tokens", "12", "--device", "cpu"])
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == f"{PROMPT}{answer.choices[0].text}\n\n"


def test_a_streamed_completion_adds_up_to_the_whole_one(client):
    whole = greedy(client, max_tokens=20)
    chunks = list(greedy(client, max_tokens=20, stream=True))
    assert "".join(chunk.choices[0].text for chunk in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_a_stream_can_end_with_the_usage(client):
    chunks = list(greedy(client, max_tokens=5, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 5
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens


def test_logprobs_come_in_the_legacy_format(client):
    choice = greedy(client, max_tokens=6, logprobs=3).choices[0]
    scores = choice.logprobs
    assert len(scores.tokens) == len(scores.token_logprobs) == len(scores.top_logprobs) == len(scores.text_offset)
    assert all(value <= 0 for value in scores.token_logprobs)
    assert all(1 <= len(tops) <= 3 for tops in scores.top_logprobs)
    assert scores.text_offset[0] == len(PROMPT) and scores.text_offset == sorted(scores.text_offset)
    # greedy: the chosen token is the likeliest, so its log-probability tops its alternatives
    assert all(value >= max(tops.values()) - 1e-4 for value, tops in zip(scores.token_logprobs, scores.top_logprobs))


def test_echo_with_no_new_tokens_scores_the_prompt(client):
    choice = greedy(client, max_tokens=0, echo=True, logprobs=0).choices[0]
    assert choice.text == PROMPT
    assert choice.logprobs.token_logprobs[0] is None
    assert all(value <= 0 for value in choice.logprobs.token_logprobs[1:])
    assert choice.logprobs.text_offset[0] == 0


def test_each_prompt_of_a_list_gets_n_choices(client):
    answer = client.completions.create(model=MODEL_NAME, prompt=[[40, 41, 42], [50, 51]], n=2, max_tokens=4,
                                       temperature=0.8, seed=3)
    assert sorted(choice.index for choice in answer.choices) == [0, 1, 2, 3]
    assert 4 <= answer.usage.completion_tokens <= 16  # each choice ends at max_tokens or at the EOS token
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_a_seed_repeats_a_sampled_completion(client):
    first, second = (client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=10, temperature=1.0,
                                               seed=7).choices[0].text for _ in range(2))
    assert first == second


def test_a_stop_string_cuts_the_text_streamed_or_not(client):
    full = greedy(client, max_tokens=16).choices[0].text
    stop = next(full[at:at + 2] for at in range(1, len(full) - 1) if "\ufffd" not in full[at:at + 2])
    whole = greedy(client, max_tokens=16, stop=[stop]).choices[0]
    streamed = "".join(chunk.choices[0].text for chunk in greedy(client, max_tokens=16, stop=[stop], stream=True))
    assert whole.text == streamed == full[:full.index(stop)]
    assert whole.finish_reason == "stop"


def test_the_model_list_names_the_served_model(client):
    assert [model.id for model in client.models.list().data] == [MODEL_NAME]


def test_the_load_benchmark_runs_against_the_server(server):
    benchmark = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
    finished = subprocess.run([sys.executable, str(benchmark), "--url", server.url, "--api-key", API_KEY,
                               "--requests", "4", "--concurrency", "2", "--max-tokens", "4"],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "generated tokens/s" in finished.stdout
