"""The routing trace records each token's router choices, through hooks it removes, for token-choice routers."""

import numpy as np
import pytest
import torch

from dsmoe.analysis.trace import Trace, record_trace
from tests.train.tiny import one_thread, tiny_model

SEQ_LEN = 8


@pytest.fixture(autouse=True)
def one_torch_thread():
    with one_thread():
        yield


def domain_tokens(n_tokens: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.integers(0, 512, n_tokens).astype(np.int32), "b": rng.integers(0, 512, n_tokens).astype(np.int32)}


@pytest.mark.parametrize("router", ["softmax_topk", "sinkhorn"])  # sinkhorn: in eval, the plain top-k of its softmax
def test_experts_are_the_routers_own_topk(tmp_path, router):
    model, tokens = tiny_model(router=router).eval(), domain_tokens(3 * SEQ_LEN + 5)
    trace = record_trace(model, tokens, SEQ_LEN, tmp_path / "trace", batch_size=4)
    assert trace.n_tokens == 6 * SEQ_LEN and list(trace.domains) == [0] * 24 + [1] * 24
    ids_BL = torch.from_numpy(np.asarray(trace.token_ids, dtype=np.int64).reshape(-1, SEQ_LEN))
    inputs = {}
    handles = [model.layers[layer].ffn.router.register_forward_pre_hook(
        lambda module, args, layer=layer: inputs.update({layer: args[0]})) for layer in trace.moe_layers]
    with torch.no_grad():
        model(ids_BL)
    for handle in handles:
        handle.remove()
    for layer in trace.moe_layers:
        probs_TE = model.layers[layer].ffn.router.logits(inputs[layer]).softmax(-1).detach()
        topk = probs_TE.topk(trace.top_k, dim=-1)
        assert np.array_equal(trace.experts(layer), topk.indices.numpy())
        assert np.allclose(trace.weights(layer), topk.values.numpy(), atol=1e-5)


def test_hooks_are_removed(tmp_path):
    model = tiny_model()
    record_trace(model, domain_tokens(SEQ_LEN), SEQ_LEN, tmp_path / "trace")
    assert all(len(block.ffn.router._forward_hooks) == 1 for block in model.layers)  # the router's own


def test_arrays_are_npy_files_numpy_reads(tmp_path):
    trace = record_trace(tiny_model(), domain_tokens(SEQ_LEN), SEQ_LEN, tmp_path / "trace")
    experts = np.load(tmp_path / "trace" / "experts_0.npy", mmap_mode="r")
    assert isinstance(experts, np.memmap) and experts.dtype == np.int16 and experts.shape == (16, 2)
    assert Trace(tmp_path / "trace").meta["domains"] == ["a", "b"] == trace.domain_names


def test_soft_moe_is_refused(tmp_path):
    with pytest.raises(ValueError, match="router='soft_moe' is not a token-choice router"):
        record_trace(tiny_model(router="soft_moe"), domain_tokens(SEQ_LEN), SEQ_LEN, tmp_path / "trace")


def test_entropy_is_that_of_the_routers_distribution(tmp_path):
    model = tiny_model().eval()
    trace = record_trace(model, domain_tokens(SEQ_LEN), SEQ_LEN, tmp_path / "trace")
    assert trace.has_entropy
    ids_BL = torch.from_numpy(np.asarray(trace.token_ids, dtype=np.int64).reshape(-1, SEQ_LEN))
    inputs = {}
    router = model.layers[trace.moe_layers[0]].ffn.router
    handle = router.register_forward_pre_hook(lambda module, args: inputs.update(x=args[0]))
    with torch.no_grad():
        model(ids_BL)
    handle.remove()
    probs_TE = router.affinities(inputs["x"])
    expected = -(probs_TE * probs_TE.log()).sum(-1).detach()
    assert np.allclose(trace.entropy(trace.moe_layers[0]), expected.numpy(), atol=1e-5)


def test_a_router_without_gate_records_no_entropy(tmp_path):
    trace = record_trace(tiny_model(router="hash"), domain_tokens(SEQ_LEN), SEQ_LEN, tmp_path / "trace")
    assert not trace.has_entropy and not (tmp_path / "trace" / "entropy_0.npy").exists()
