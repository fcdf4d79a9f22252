"""Traits, not names: what a router is (RouterTraits) is written once, in its registry entry or on its class, and
the code outside dsmoe.routers asks the traits, never compares the router's name."""

import ast
import re
from pathlib import Path

import pytest

import dsmoe
from dsmoe.registry import ROUTERS, RouterRegistry, RouterTraits
from dsmoe.routers import Router

SRC = Path(dsmoe.__file__).parent
BUILT_IN = ("softmax_topk", "sigmoid_topk", "sqrtsoftplus_topk", "noisy_topk", "switch", "gshard", "hash",
            "expert_choice", "soft_moe", "sinkhorn")
MAY_NAME_ROUTERS = (  # where a built-in router's name may be written as a string in code, and why
    "routers/",  # each router's own file, which looks up its traits under its registered name
    "registry.py",  # the table of names and their traits
    "presets.py",  # configs that choose a router, as a value
    "reproduce/suites.py",  # the papers' baselines, each a config choosing a router
    "interop/config_",  # the router a Hugging Face family's gate is, chosen when reading its config.json
)


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (documentation may name routers)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def field_defaults(tree: ast.AST) -> set[int]:
    """ids of the defaults of annotated class attributes: a config field's default router is a choice, not a rule."""
    return {id(statement.value) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            for statement in node.body if isinstance(statement, ast.AnnAssign) and statement.value is not None}


def names_a_router(text: str) -> bool:
    """`text` is a built-in router's name, or mentions one that is no English word ("hash" and "switch" are)."""
    return text in BUILT_IN or any(re.search(rf"\b{name}\b", text) for name in BUILT_IN if "_" in name)


def test_the_built_in_routers_are_registered():
    assert set(BUILT_IN) <= set(ROUTERS)


def test_no_code_outside_the_allowed_files_names_a_built_in_router():
    """The allow-list is MAY_NAME_ROUTERS; docstrings, comments and a field's default are not rules."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(MAY_NAME_ROUTERS):
            continue
        tree = ast.parse(path.read_text())
        skipped = docstrings(tree) | field_defaults(tree)
        found += [f"{relative}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped
                  and names_a_router(node.value)]
    assert found == []


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_built_in_router_class_carries_its_registry_traits(name):
    assert ROUTERS[name].traits is ROUTERS.traits(name)


def test_register_reads_the_traits_a_class_declares():
    class Grouped(Router):
        traits = RouterTraits(group_score="max")

    registry = RouterRegistry({})
    registry.register("grouped", Grouped)
    registry.register("plain", Router)
    registry.register("by_path", "dsmoe.routers.hash_router:HashRouter")
    registry.register("explicit", Router, RouterTraits(fixed_top_k=1))
    assert registry.traits("grouped") is Grouped.traits and registry.traits("plain") == RouterTraits()
    assert registry.traits("by_path") is ROUTERS.traits("hash")
    assert registry.having(lambda traits: traits.group_limited) == ["grouped"]
    assert registry.having(lambda traits: traits.fixed_top_k == 1) == ["explicit"]
    registry.unregister("grouped")
    assert "grouped" not in registry and registry.having(lambda traits: traits.group_limited) == []


def test_the_group_limited_routers_are_softmax_sigmoid_and_sqrtsoftplus_top_k():
    built_in = [name for name in ROUTERS.having(lambda traits: traits.group_limited) if name in BUILT_IN]
    assert built_in == ["softmax_topk", "sigmoid_topk", "sqrtsoftplus_topk"]
