"""train.optimizer="muon": torch.optim.Muon on exactly the hidden 2-D matrices, the same update on each routed
expert's matrices (StackedMuon), AdamW on the rest, stepped, scheduled and checkpointed as one optimizer; a resumed
Muon run retraces the uninterrupted one bit for bit."""

import copy
import shutil

import pytest
import torch
from safetensors.torch import load_file

from dsmoe.runs import RunConfig, RunDir
from dsmoe.config.train_config import TrainConfig
from dsmoe.train.loop import train
from dsmoe.train.muon import MuonWithAdamW
from dsmoe.train.stacked_muon import StackedMuon, orthogonalise
from dsmoe.train.optim import build_optimizer, build_scheduler, parameter_groups
from train.tiny import one_thread, run_config, tiny_model

MUON = TrainConfig(optimizer="muon", muon_lr=0.05, lr=1e-3, warmup_steps=2, steps=10)


def names_of(model, params) -> set[str]:
    by_id = {id(param): name for name, param in model.named_parameters()}
    return {by_id[id(param)] for param in params}


def backward_on_random_tokens(model, seed: int) -> None:
    tokens = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(seed))
    model(tokens, labels=tokens).loss.backward()


def test_muon_takes_the_hidden_matrices_and_expert_stacks_and_adamw_everything_else_once():
    model = tiny_model(n_shared_experts=1, first_k_dense_replace=1)
    optimizer = build_optimizer(model, MUON)
    muon = names_of(model, optimizer.muon.param_groups[0]["params"])
    stacked = {group["row_blocks"]: names_of(model, group["params"]) for group in optimizer.stacked.param_groups}
    adamw = names_of(model, [param for group in optimizer.adamw.param_groups for param in group["params"]])
    hidden = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert muon == {name for name, _ in model.named_parameters() if name.split(".")[-2] in hidden}
    assert any("shared_experts" in name for name in muon) and any("layers.0.ffn" in name for name in muon)
    assert stacked == {2: {"layers.1.ffn.experts.gate_up_proj"}, 1: {"layers.1.ffn.experts.down_proj"}}
    assert {"embed_tokens.weight", "lm_head.weight", "layers.1.ffn.router.weight", "norm.weight"} <= adamw
    every = [muon, *stacked.values(), adamw]
    assert sum(map(len, every)) == len(set().union(*every)) == len(list(model.named_parameters()))


def test_a_dense_model_has_no_stacked_part():
    optimizer = build_optimizer(tiny_model(n_routed_experts=0, n_shared_experts=0, aux_loss_alpha=0.0), MUON)
    assert optimizer.stacked is None and optimizer.parts == [optimizer.muon, optimizer.adamw]


def test_batched_newton_schulz_is_torch_muons_on_each_matrix():
    matrices = torch.randn(5, 24, 40, generator=torch.Generator().manual_seed(0))
    for batch in (matrices, matrices.mT.contiguous()):  # wide and tall
        reference = torch.stack([torch.optim._muon._zeropower_via_newtonschulz(m, (3.4445, -4.7750, 2.0315), 5,
                                                                               1e-7) for m in batch])
        torch.testing.assert_close(orthogonalise(batch), reference, rtol=0, atol=2e-2)  # bfloat16's rounding
        assert (orthogonalise(batch).float() - reference.float()).abs().mean() < 2e-3


def test_a_stacked_step_is_torch_muon_on_each_experts_gate_up_and_down_as_separate_matrices():
    """Two steps (momentum included) of StackedMuon on [E, 2F, D] and [E, D, F] against torch.optim.Muon on the
    3E separate matrices a dense SwiGLU FFN per expert would hold."""
    generator = torch.Generator().manual_seed(1)
    experts, width, hidden = 3, 8, 12
    gate_up = torch.nn.Parameter(torch.randn(experts, 2 * width, hidden, generator=generator))
    down = torch.nn.Parameter(torch.randn(experts, hidden, width, generator=generator))
    split = [torch.nn.Parameter(matrix.clone()) for e in range(experts)
             for matrix in (gate_up[e, :width], gate_up[e, width:], down[e])]
    settings = dict(lr=0.05, weight_decay=0.1, momentum=0.95)
    stacked = StackedMuon([{"params": [gate_up], "row_blocks": 2}, {"params": [down], "row_blocks": 1}], **settings)
    reference = torch.optim.Muon(split, **settings)
    for _ in range(2):
        gate_up.grad, down.grad = torch.randn_like(gate_up), torch.randn_like(down)
        for e in range(experts):
            for index, grad in enumerate((gate_up.grad[e, :width], gate_up.grad[e, width:], down.grad[e])):
                split[3 * e + index].grad = grad.clone()
        stacked.step()
        reference.step()
    for e in range(experts):
        for index, weight in enumerate((gate_up[e, :width], gate_up[e, width:], down[e])):
            torch.testing.assert_close(weight, split[3 * e + index], rtol=0, atol=2e-3)
    assert not torch.equal(down[0], down[1])


def test_stacked_muon_refuses_a_stack_it_cannot_split():
    with pytest.raises(ValueError, match=r"row_blocks=2, got \(2, 5, 4\)"):
        StackedMuon([{"params": [torch.nn.Parameter(torch.zeros(2, 5, 4))], "row_blocks": 2}], 0.1, 0.0, 0.9)


def test_one_step_is_torch_muon_on_the_matrices_and_adamw_on_the_rest():
    model = tiny_model(n_shared_experts=1)
    reference = copy.deepcopy(model)
    backward_on_random_tokens(model, 0)
    backward_on_random_tokens(reference, 0)
    build_optimizer(model, MUON).step()

    built = build_optimizer(model, MUON)
    matrices = names_of(model, built.muon.param_groups[0]["params"])
    stacks = {name: group["row_blocks"] for group in built.stacked.param_groups for name in names_of(model, group["params"])}
    params = dict(reference.named_parameters())
    torch.optim.Muon([params[name] for name in sorted(matrices)], lr=0.05, weight_decay=MUON.weight_decay).step()
    StackedMuon([{"params": [params[name]], "row_blocks": blocks} for name, blocks in stacks.items()], lr=0.05,
                weight_decay=MUON.weight_decay, momentum=0.95).step()
    matrices |= stacks.keys()
    rest = [{**group, "params": [p for p in group["params"] if names_of(reference, [p]).isdisjoint(matrices)]}
            for group in parameter_groups(reference, MUON.weight_decay)]
    torch.optim.AdamW(rest, lr=1e-3, betas=(MUON.beta1, MUON.beta2), eps=MUON.eps).step()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, params[name], rtol=0, atol=1e-7, msg=name)


def test_the_schedule_scales_muon_lr_and_lr_alike():
    model = tiny_model()
    optimizer = build_optimizer(model, MUON)
    scheduler = build_scheduler(optimizer, MUON)
    peaks = [0.05, 0.05, 0.05, 1e-3, 1e-3]  # Muon's group, StackedMuon's two (down, gate_up), AdamW's two
    assert [group["lr"] for group in optimizer.param_groups] == [lr / 2 for lr in peaks]  # warm-up step 1 of 2
    backward_on_random_tokens(model, 1)
    optimizer.step()
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == peaks
    assert [group["lr"] for part in optimizer.parts for group in part.param_groups] == peaks


def test_its_state_dict_round_trips_and_refuses_another_optimizers_state():
    model = tiny_model()
    optimizer = build_optimizer(model, MUON)
    backward_on_random_tokens(model, 2)
    optimizer.step()
    saved = optimizer.state_dict()
    fresh = build_optimizer(model, MUON)
    fresh.load_state_dict(copy.deepcopy(saved))
    assert isinstance(fresh, MuonWithAdamW)
    for index, moments in saved["state"].items():
        for key, value in moments.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(fresh.state_dict()["state"][index][key]))
    with pytest.raises(ValueError, match="saved with another optimizer"):
        fresh.load_state_dict(build_optimizer(model, TrainConfig()).state_dict())


def test_a_resumed_muon_run_retraces_the_uninterrupted_run_bitwise(tmp_path):
    settings = dict(train__optimizer="muon", train__steps=6, train__save_every=3, train__eval_every=0)
    with one_thread():
        train(run_config(tmp_path, **settings), tmp_path / "whole")
        shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
        resumed = RunDir(tmp_path / "resumed")
        shutil.rmtree(resumed.latest_checkpoint().path)  # back to the step-3 checkpoint
        assert train(None, resumed.path, resume=True).step == 6
    whole = load_file(RunDir(tmp_path / "whole").latest_checkpoint().weights_path)
    again = load_file(resumed.latest_checkpoint().weights_path)
    assert whole.keys() == again.keys()
    for name, tensor in whole.items():
        assert tensor.equal(again[name]), name


def test_muon_is_refused_for_a_parallel_run_naming_the_fields():
    with pytest.raises(ValueError, match=r"train.optimizer='muon' runs on one process only .*ep \* parallel.dp = 2"):
        RunConfig.load(None, [("train.optimizer", "muon"), ("parallel.dp", 2), ("train.batch_size", 4)])
    with pytest.raises(ValueError, match="train.optimizer='sgd' must be one of adamw, muon"):
        RunConfig.load(None, [("train.optimizer", "sgd")])


def test_its_step_runs_the_post_step_hooks_the_bias_updates_hang_on():
    model = tiny_model()
    optimizer = build_optimizer(model, MUON)
    calls = []
    optimizer.register_step_post_hook(lambda *_: calls.append(1))
    backward_on_random_tokens(model, 3)
    optimizer.step()
    assert calls == [1]
