"""Routers by name. Adding one: write its class in a file here and add one line, its name, class path and
RouterTraits, to dsmoe.registry.ROUTERS (a router of one's own declares `traits` on its class instead)."""

from dsmoe.registry import ROUTERS, RouterTraits
from dsmoe.routers.base import Router, RouterStats, Routing, SoftRouting
from dsmoe.routers.step_updates import apply_router_updates, discard_router_updates, install_router_updates, routers_of

__all__ = ["ROUTERS", "Router", "RouterStats", "RouterTraits", "Routing", "SoftRouting", "apply_router_updates",
           "discard_router_updates", "install_router_updates", "routers_of"]
