"""Every forward the engine runs happens inside its compute_context (a run's autocast, which is per thread), also
when the engine steps in its own thread."""

import contextlib
import threading

from dsmoe.serve import Engine
from serve.engine_runs import PROMPTS, greedy
from train.tiny import tiny_model


def test_every_forward_runs_inside_the_compute_context_on_the_engine_thread():
    model, inside = tiny_model().eval(), threading.local()
    forwards_inside: list[bool] = []

    @contextlib.contextmanager
    def compute_context():
        inside.active = True
        try:
            yield
        finally:
            inside.active = False

    model.register_forward_pre_hook(lambda module, args: forwards_inside.append(getattr(inside, "active", False)))
    with Engine(model, compute_context=compute_context) as engine:  # steps in its own thread
        engine.submit(greedy(PROMPTS[0], max_tokens=4))[0].collect()
    assert len(forwards_inside) == 4 and all(forwards_inside)  # one prefill, three decoding steps
