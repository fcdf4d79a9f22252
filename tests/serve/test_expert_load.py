"""The engine's live expert load counts every real token it forwards once per MoE layer and chosen expert: pads
are never routed, so each layer's counts sum to tokens x n_activated_experts."""

from serve.engine_runs import PROMPTS, engine_for, greedy, run_all
from train.tiny import tiny_model


def test_each_layers_counts_sum_to_the_forwarded_tokens_times_k():
    model = tiny_model(first_k_dense_replace=1, n_layers=3).eval()
    engine = engine_for(model, max_batch=3)
    completions = run_all(engine, [greedy(prompt, max_tokens=4) for prompt in PROMPTS[:5]])
    forwarded = sum(len(prompt) for prompt in PROMPTS[:5]) + sum(len(c.token_ids) - 1 for c in completions)
    load = engine.load.snapshot()
    assert load.moe_layers == [1, 2]
    assert [sum(counts) for counts in load.tokens_per_expert] == [forwarded * model.config.n_activated_experts] * 2
    assert all(len(counts) == model.config.n_routed_experts for counts in load.tokens_per_expert)
