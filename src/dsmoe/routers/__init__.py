"""Routers by name. Adding one: write its class in a file here and add one line to dsmoe.registry.ROUTERS."""

from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, RouterStats, Routing, SoftRouting
from dsmoe.routers.step_updates import apply_router_updates, discard_router_updates, install_router_updates, routers_of

__all__ = ["ROUTERS", "Router", "RouterStats", "Routing", "SoftRouting", "apply_router_updates",
           "discard_router_updates", "install_router_updates", "routers_of"]
