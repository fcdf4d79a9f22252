"""A stateful router added in one file (this one) plus one registry line works end to end: its own init, its
per-step update through the optimizer hook (statistics summed by the caller's collective), checkpoints that hold
its persistent state and not its pending counts, bitwise resume, loading, and a clear refusal to export it to a
Hugging Face family that has no such router."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file

from dsmoe.interop.meta_fill import meta_model, rebuild_computed_buffers
from dsmoe.interop.run_dirs import export_run
from dsmoe.registry import ROUTERS
from dsmoe.routers import Router, Routing, install_router_updates
from dsmoe.routers.softmax_topk import token_choice_routing
from dsmoe.runs import RunDir, load_run
from dsmoe.train.loop import train
from dsmoe.train.optim import build_optimizer
from train.tiny import one_torch_thread, run_config, tiny_model  # noqa: F401

NAME = "load_tracking"
EMA = 0.9


class LoadTrackingRouter(Router):
    """Softmax top-k over logits - log(E * load_share): experts that recently took more than their share are
    chosen less. load_share is persistent state (an EMA of each expert's share of the load), updated once per
    optimizer step from the pending counts of that step's training forwards."""

    HF_TENSOR_NAMES: ClassVar[dict[str, str]] = {"weight": "weight"}  # load_share has no Hugging Face name

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("load_share", torch.empty(self.n_experts))
        self.rebuild_buffers()

    def rebuild_buffers(self) -> None:
        self.register_buffer("pending_load", torch.zeros(self.n_experts, device=self.load_share.device),
                             persistent=False)

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        super().init_weights(std)
        self.load_share.fill_(1 / self.n_experts)

    def forward(self, x_TD, token_ids_T, batch_size) -> Routing:
        logits_TE = self.logits(x_TD)
        probs_TE = (logits_TE - torch.log(self.n_experts * self.load_share)).softmax(dim=-1)
        weights_TK, experts_TK = probs_TE.topk(self.top_k, dim=-1)
        routing = token_choice_routing(self.config, experts_TK, weights_TK, probs_TE, logits_TE, batch_size,
                                       self.training)
        if self.training:
            self.pending_load += routing.stats.tokens_per_expert.float()
        return routing

    def pending_statistics(self) -> list[torch.Tensor]:
        return [self.pending_load]

    @torch.no_grad()
    def apply_step_update(self) -> None:
        if self.pending_load.sum() > 0:
            self.load_share.mul_(EMA).add_((1 - EMA) * self.pending_load / self.pending_load.sum())
        self.pending_load.zero_()


@pytest.fixture(autouse=True)
def registered():
    ROUTERS.register(NAME, LoadTrackingRouter)
    yield
    ROUTERS.unregister(NAME)


def routers(model) -> list[LoadTrackingRouter]:
    return [m for m in model.modules() if isinstance(m, LoadTrackingRouter)]


def config_with_router(tmp_path, **changes):
    return run_config(tmp_path, model__router=NAME, **changes)


def test_the_model_builds_it_from_the_config_and_runs_its_init():
    model = tiny_model(router=NAME)
    assert len(routers(model)) == len(model.config.moe_layers)
    for router in routers(model):
        assert torch.equal(router.load_share, torch.full((4,), 0.25))


def test_the_optimizer_hook_sums_its_statistics_then_applies_its_update(tmp_path):
    model = tiny_model(router=NAME).train()
    optimizer = build_optimizer(model, config_with_router(tmp_path).train)
    seen = []
    install_router_updates(optimizer, model, reduce_sum=lambda t: (seen.append(t.clone()), t.mul_(2)))
    tokens = torch.randint(0, 512, (2, 16))
    model(tokens, labels=tokens).loss.backward()
    pending = [router.pending_load.clone() for router in routers(model)]
    optimizer.step()
    assert [torch.equal(a, b) for a, b in zip(seen, pending)] == [True] * len(pending)
    for router, counts in zip(routers(model), pending):  # the update saw the reduced (doubled) counts
        expected = EMA * 0.25 + (1 - EMA) * (2 * counts) / (2 * counts).sum()
        torch.testing.assert_close(router.load_share, expected)
        assert router.pending_load.sum() == 0


def test_train_checkpoint_resume_and_load(tmp_path):
    settings = dict(train__save_every=2, train__keep_last=5, train__eval_every=0)
    train(config_with_router(tmp_path, train__steps=4, **settings), tmp_path / "whole")
    train(config_with_router(tmp_path, train__steps=2, **settings), tmp_path / "resumed")
    train(config_with_router(tmp_path, train__steps=4, **settings), tmp_path / "resumed", resume=True)

    weights = [load_file(RunDir(tmp_path / run).latest_checkpoint().weights_path)
               for run in ("whole", "resumed")]
    state_names = [name for name in weights[0] if ".router." in name]
    assert any(name.endswith("router.load_share") for name in state_names)
    assert not any("pending_load" in name for name in weights[0])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])

    loaded = load_run(tmp_path / "whole")
    shares = [router.load_share for router in routers(loaded.model)]
    assert all(not torch.equal(share, torch.full((4,), 0.25)) for share in shares)  # the updates ran and were saved


def test_a_meta_build_gets_its_pending_counts_back():
    model = tiny_model(router=NAME)
    skeleton = meta_model(model.config)
    skeleton.load_state_dict(model.state_dict(), assign=True)
    rebuild_computed_buffers(skeleton)
    for router in routers(skeleton):
        assert router.pending_load.device.type == "cpu" and router.pending_load.sum() == 0


def test_export_to_a_hugging_face_family_names_the_router(tmp_path):
    train(config_with_router(tmp_path, train__steps=1, model__n_shared_experts=0,
                             model__first_k_dense_replace=0), tmp_path / "run")
    with pytest.raises(ValueError, match=f"mixtral cannot express this config: router='{NAME}'"):
        export_run(tmp_path / "run", tmp_path / "hf", model_type="mixtral")
