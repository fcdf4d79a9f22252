"""The layering docs/ARCHITECTURE.md draws, checked floor by floor: a module imports only from its own package
and from the floors below its package's, at module level or inside functions (only under TYPE_CHECKING, for
annotations, may it name what is above); the registry resolves its names lazily to the classes that implement
them."""

import ast
from pathlib import Path

import pytest

import dsmoe
from dsmoe.registry import ROUTERS, Registry
from dsmoe.routers import Router

SRC = Path(dsmoe.__file__).parent
FLOORS = [  # bottom first; a package (a directory) or a top-level module of dsmoe, as docs/ARCHITECTURE.md draws it
    ("process", {"runtime"}),
    ("foundations", {"field_rules", "structured_files", "registry", "atomic", "hashing"}),
    ("config", {"config"}),
    ("experts", {"kernels"}),
    ("routing", {"routers"}),
    ("model", {"model", "presets"}),
    ("seed API", {"compat"}),
    ("data", {"data"}),
    ("runs", {"runs"}),
    ("evaluation", {"eval", "inference"}),
    ("scale-out", {"parallel"}),
    ("training", {"train"}),
    ("use", {"interop", "analysis"}),
    ("serving", {"serve"}),
    ("studies", {"reproduce", "demo"}),
    ("commands", {"cli"}),
    ("python -m", {"__main__"}),
]
FLOOR_OF = {part: level for level, (_, parts) in enumerate(FLOORS) for part in parts}
FACADE = "__init__"  # dsmoe/__init__.py re-exports the public names; it belongs to no floor


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def runtime_imports(tree: ast.AST) -> list[str]:
    """Every dsmoe module imported anywhere in the tree, except inside `if TYPE_CHECKING:` blocks (`from dsmoe import
    presets` counts as dsmoe.presets)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "dsmoe":
            found += [f"dsmoe.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(node.module or "")
        found += runtime_imports(node)
    return [name for name in found if name.split(".")[0] == "dsmoe"]


def part_of(module: str) -> str:
    """The floor entry a dotted dsmoe module belongs to: dsmoe.runs.checkpoint -> runs, dsmoe.atomic -> atomic."""
    return module.split(".")[1] if "." in module else FACADE


def module_parts() -> dict[str, list[Path]]:
    parts: dict[str, list[Path]] = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        parts.setdefault(relative.parts[0].removesuffix(".py"), []).append(path)
    return parts


def test_every_package_and_module_has_a_floor():
    assert sorted(set(module_parts()) - {FACADE} - set(FLOOR_OF)) == []


@pytest.mark.parametrize("part", sorted(set(FLOOR_OF)))
def test_each_part_imports_only_the_floors_below_it(part):
    above = []
    for path in module_parts().get(part, []):
        for name in runtime_imports(ast.parse(path.read_text())):
            imported = part_of(name)
            if imported != part and FLOOR_OF.get(imported, len(FLOORS)) >= FLOOR_OF[part]:
                above.append(f"{path.relative_to(SRC)} imports {name} ({FLOORS[FLOOR_OF.get(imported, 0)][0]} floor)")
    assert above == []


def test_no_two_parts_import_each_other():
    imports = {part: {part_of(name) for path in paths for name in runtime_imports(ast.parse(path.read_text()))}
               for part, paths in module_parts().items()}
    pairs = sorted((a, b) for a in imports for b in imports[a] if a < b and a in imports.get(b, ()))
    assert pairs == []


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
