"""Greedy self-speculative decoding yields exactly greedy decoding's tokens, whatever the drafts; its cached MTP
drafts equal the MTP modules' training-path predictions; a trained MTP module gets drafts accepted."""

import pytest
import torch

from dsmoe.cli.main import main
from dsmoe.inference import SamplingConfig, generate, generate_speculative
from dsmoe.inference.speculative import MTPDrafter
from dsmoe.model.kv_cache import KVCache
from dsmoe.train.loop import train
from train.tiny import run_config, tiny_model

MLA = dict(attention="mla", q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6)
CONFIGS = {"mha_d1": dict(n_mtp_modules=1), "mla_d1": {**MLA, "n_mtp_modules": 1}, "mha_d2": dict(n_mtp_modules=2)}
PROMPTS = [[5, 17, 260, 3, 99, 7, 8], [42], [300, 301, 302, 303]]
GREEDY = SamplingConfig(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module", params=CONFIGS, ids=CONFIGS.keys())
def model(request):
    """float64, so that feeding several tokens per forward cannot flip an argmax by rounding."""
    return tiny_model(**CONFIGS[request.param]).double().eval()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_tokens_equal_greedy_decoding(model, prompt):
    result = generate_speculative(model, prompt, GREEDY)
    assert result.tokens == generate(model, prompt, GREEDY)
    assert result.proposed > 0 and result.forwards <= len(result.tokens)


def test_cached_drafts_equal_training_path_mtp_predictions(model, monkeypatch):
    """Depth k's draft after t_0..t_m is the argmax of mtp_logits[k - 1] at position m - 1 of a whole-sequence
    forward over the tokens and the earlier drafts (the training path, without any cache)."""
    rounds = []
    draft = MTPDrafter.draft
    monkeypatch.setattr(MTPDrafter, "draft", lambda self, sequence, n: rounds.append(
        (list(sequence), draft(self, sequence, n))) or rounds[-1][1])
    generate_speculative(model, PROMPTS[0], GREEDY)
    assert len(rounds) >= 3
    for sequence, drafts in rounds:
        with torch.no_grad():
            mtp_logits = model(torch.tensor([sequence + drafts[:-1]]), mtp=True).mtp_logits
        assert drafts == [int(mtp_logits[k][0, len(sequence) - 2].argmax()) for k in range(len(drafts))]


def stub_drafts(monkeypatch, reference: list[int], prompt: list[int], right: list[bool]) -> None:
    """Make the drafter propose greedy decoding's own next tokens where `right` says so, else a wrong token."""
    def draft(self, sequence, n_drafts):
        done = len(sequence) - len(prompt)
        return [reference[done + i] if right[i] else (reference[done + i] + 1) % 512 for i in range(n_drafts)]
    monkeypatch.setattr(MTPDrafter, "draft", draft)


@pytest.mark.parametrize("right", [[True, True], [False, False], [True, False]], ids=["all", "none", "first"])
def test_acceptance_counts_and_tokens_follow_the_drafts(model, monkeypatch, right):
    prompt = PROMPTS[0]
    reference = generate(model, prompt, GREEDY)
    stub_drafts(monkeypatch, reference, prompt, right)
    result = generate_speculative(model, prompt, GREEDY)
    assert result.tokens == reference
    depths = model.config.n_mtp_modules
    expected_rate = sum(right[:depths]) / depths if right[0] else 0.0
    assert result.acceptance_rate == pytest.approx(expected_rate)


def test_stops_at_end_of_text_inside_accepted_drafts(model, monkeypatch):
    prompt = PROMPTS[0]
    reference = generate(model, prompt, GREEDY)
    sampling = SamplingConfig(max_new_tokens=12, temperature=0.0, eos_token_id=reference[4])
    stub_drafts(monkeypatch, reference, prompt, [True, True])
    expected = generate(model, prompt, sampling)
    assert generate_speculative(model, prompt, sampling).tokens == expected == reference[:reference.index(reference[4]) + 1]


def test_trained_mtp_module_gets_drafts_accepted():
    """A model and its MTP module trained on a repeating cycle predict it, so most drafts are accepted."""
    torch.manual_seed(0)
    model = tiny_model(n_mtp_modules=1, n_layers=1, first_k_dense_replace=1)
    cycle_L = torch.randperm(500)[:12]
    data_BL = cycle_L.repeat(8)[None, :49].repeat(4, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        model(data_BL[:, :-1], labels=data_BL[:, 1:]).loss.backward()
        optimizer.step()
    prompt = cycle_L[:5].tolist()
    sampling = SamplingConfig(max_new_tokens=30, temperature=0.0)
    result = generate_speculative(model, prompt, sampling)
    assert result.tokens == generate(model, prompt, sampling)
    assert result.acceptance_rate > 0.8 and result.tokens_per_forward > 1.5, result.summary()


def test_refuses_models_without_mtp_and_sampling():
    with pytest.raises(ValueError, match="n_mtp_modules=0"):
        generate_speculative(tiny_model(), [1, 2], GREEDY)
    with pytest.raises(ValueError, match="temperature=0.8"):
        generate_speculative(tiny_model(n_mtp_modules=1), [1, 2], SamplingConfig(temperature=0.8))


def test_cache_rollback_refuses_to_grow():
    cache = KVCache(n_layers=1, max_len=8)
    cache.length = 3
    cache.rollback(1)
    assert cache.length == 1
    with pytest.raises(ValueError, match="length=2 must be in \\[0, current length=1\\]"):
        cache.rollback(2)


def test_cli_prints_completion_and_acceptance(tmp_path, capsys):
    train(run_config(tmp_path, train__steps=1, model__n_mtp_modules=1), tmp_path / "run")
    capsys.readouterr()
    assert main(["generate", "--run", str(tmp_path / "run"), "--prompt", "ROMEO:", "--speculative",
                 "--max-new-tokens", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ROMEO:")
    assert lines[-1].startswith("speculative: ") and "drafts accepted" in lines[-1] and "tokens per forward" in lines[-1]
    assert main(["generate", "--run", str(tmp_path / "run"), "--prompt", "a", "--prompt", "b", "--speculative"]) == 2
    assert "--speculative decodes one prompt; got 2" in capsys.readouterr().err
