"""Every test here runs torch on one thread (see train.tiny.one_torch_thread)."""

from train.tiny import one_torch_thread  # noqa: F401
