"""Learning-rate schedules and AdamW parameter groups."""

import pytest
import torch

from dsmoe.config.train_config import TrainConfig
from dsmoe.train.optim import build_optimizer, build_scheduler, lr_multiplier, parameter_groups
from train.tiny import tiny_model


def multipliers(**fields) -> list[float]:
    cfg = TrainConfig(**fields)
    return [lr_multiplier(step, cfg) for step in range(cfg.steps)]


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
def test_warmup_rises_linearly_to_the_peak(schedule):
    assert multipliers(steps=100, warmup_steps=4, schedule=schedule)[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


def test_a_fractional_position_past_the_last_warmup_step_stays_at_the_peak():  # a time budget drives the position
    assert lr_multiplier(3.5, TrainConfig(steps=100, warmup_steps=4)) == 1.0


def test_cosine_decays_monotonically_to_min_lr_ratio_when_training_ends():
    values = multipliers(steps=101, warmup_steps=1, schedule="cosine", min_lr_ratio=0.1)
    assert values[1] == pytest.approx(1.0)
    assert values[51] == pytest.approx(0.55)  # halfway: the mean of peak and floor
    assert all(later < earlier for earlier, later in zip(values[1:], values[2:]))
    cfg = TrainConfig(steps=101, warmup_steps=1, min_lr_ratio=0.1)
    after_last_step = lr_multiplier(cfg.steps, cfg)  # what the scheduler holds once `steps` updates are done
    assert after_last_step == pytest.approx(0.1) and values[-1] > after_last_step


def test_step_schedule_multiplies_by_0316_at_80_and_again_at_90_percent():
    values = multipliers(steps=100, warmup_steps=10, schedule="step")
    assert values[10:80] == [1.0] * 70
    assert values[80:90] == [0.316] * 10
    assert values[90:] == pytest.approx([0.316 ** 2] * 10)


def test_constant_schedule_holds_the_peak_after_warmup():
    assert multipliers(steps=50, warmup_steps=5, schedule="constant")[5:] == [1.0] * 45


def test_scheduler_sets_the_optimizer_lr_of_every_group():
    model = tiny_model()
    cfg = TrainConfig(steps=10, warmup_steps=2, lr=1e-2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    assert [group["lr"] for group in optimizer.param_groups] == [5e-3, 5e-3]
    optimizer.step()
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == [1e-2, 1e-2]


def group_names(model, weight_decay=0.1) -> tuple[set[str], set[str]]:
    names = {id(param): name for name, param in model.named_parameters()}
    decay, no_decay = parameter_groups(model, weight_decay)
    assert decay["weight_decay"] == weight_decay and no_decay["weight_decay"] == 0.0
    return {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}


def test_matrices_and_stacked_experts_decay_norms_and_embeddings_do_not():
    decay, no_decay = group_names(tiny_model())
    assert no_decay == {"embed_tokens.weight", "norm.weight", "layers.0.attn_norm.weight", "layers.0.ffn_norm.weight",
                        "layers.1.attn_norm.weight", "layers.1.ffn_norm.weight"}
    assert {"lm_head.weight", "layers.0.attn.q_proj.weight", "layers.1.ffn.router.weight",
            "layers.1.ffn.experts.gate_up_proj", "layers.1.ffn.experts.down_proj",
            "layers.1.ffn.shared_experts.down_proj.weight"} <= decay
    assert decay | no_decay == {name for name, _ in tiny_model().named_parameters()}


def test_tied_embedding_is_counted_once_and_not_decayed():
    model = tiny_model(tie_word_embeddings=True)
    decay, no_decay = parameter_groups(model, 0.1)
    params = decay["params"] + no_decay["params"]
    assert len({id(p) for p in params}) == len(params) == len(list(model.parameters()))
    assert any(p is model.lm_head.weight for p in no_decay["params"])
    assert sum(p.numel() for p in params) == sum(p.numel() for p in model.parameters())


def test_sigmoid_topk_expert_bias_is_a_buffer_not_an_optimized_parameter():
    model = tiny_model(router="sigmoid_topk")
    optimized = {id(p) for group in build_optimizer(model, TrainConfig()).param_groups for p in group["params"]}
    biases = [buffer for name, buffer in model.named_buffers() if name.endswith("expert_bias")]
    assert len(biases) == 2 and not any(id(bias) in optimized for bias in biases)
    assert not any(name.endswith("expert_bias") for name, _ in model.named_parameters())
    assert all(isinstance(bias, torch.Tensor) and not bias.requires_grad for bias in biases)
