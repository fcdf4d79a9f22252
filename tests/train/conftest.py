"""Every test here runs torch on one thread (see train.tiny.one_torch_thread); the fake clock's fixtures."""

from train.fake_clock import clock, slow_steps  # noqa: F401
from train.tiny import one_torch_thread  # noqa: F401
