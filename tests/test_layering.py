"""The config is the ground floor: it, its validation, the field rules every config section is checked by and the
registry of names import nothing above them, at module level or inside functions (only under TYPE_CHECKING, for
annotations); the registry resolves its names lazily to the classes that implement them."""

import ast
from pathlib import Path

import pytest

import dsmoe
from dsmoe.registry import ROUTERS, Registry
from dsmoe.routers import Router

SRC = Path(dsmoe.__file__).parent
GROUND_FLOOR = {"dsmoe.config": "config.py", "dsmoe.config_checks": "config_checks.py", "dsmoe.registry": "registry.py",
                "dsmoe.field_rules": "field_rules.py", "dsmoe.structured_files": "structured_files.py"}


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def runtime_imports(tree: ast.AST) -> list[str]:
    """Every module imported anywhere in the tree, except inside `if TYPE_CHECKING:` blocks."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(node.module or "")
        found += runtime_imports(node)
    return found


@pytest.mark.parametrize("module", sorted(GROUND_FLOOR))
def test_ground_floor_imports_only_the_ground_floor(module):
    tree = ast.parse((SRC / GROUND_FLOOR[module]).read_text())
    above = [name for name in runtime_imports(tree) if name.startswith("dsmoe") and name not in GROUND_FLOOR]
    assert above == []


def test_every_registered_router_resolves_to_a_router_class():
    for name in ROUTERS:
        assert issubclass(ROUTERS[name], Router), name


def test_registry_imports_an_entry_only_when_it_is_looked_up():
    registry = Registry("thing", {"counter": "collections:Counter"})
    assert registry._entries["counter"] == "collections:Counter"
    from collections import Counter
    assert registry["counter"] is Counter


def test_registering_a_taken_name_is_an_error():
    with pytest.raises(ValueError, match="router 'hash' is already registered"):
        ROUTERS.register("hash", Router)
