"""runs/ alone knows a checkpoint's files and formats: outside it, no module reads or writes safetensors or torch
files (Hugging Face directories, interop/hf.py and hf_files.py, are a format of their own), names a checkpoint's
files, or touches its manifest; everyone else calls dsmoe.runs.checkpoint (save, save a weights-only run, load or
read weights, verify, list intact checkpoints, load the trainer state)."""

import ast
from pathlib import Path

import dsmoe

SRC = Path(dsmoe.__file__).parent
HF_FORMAT = {"interop/hf.py", "interop/hf_files.py"}  # transformers' directories, not dsmoe checkpoints
CHECKPOINT_FILE_ATTRIBUTES = {"weights_path", "trainer_state_path", "manifest_path"}  # CheckpointDir's file names
CHECKPOINT_FILE_NAMES = {"model.safetensors", "trainer_state.pt", "manifest.json"}
FILE_CALLS = {("torch", "save"), ("torch", "load")}


def outside_runs() -> list[Path]:
    return [path for path in sorted(SRC.rglob("*.py")) if path.relative_to(SRC).parts[0] != "runs"]


def offences(relative: str, source: str) -> list[str]:
    """What the module at `relative` (a path under src/dsmoe) does with checkpoint files that only runs/ may do."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and relative not in HF_FORMAT:
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"imports {module}" for module in modules if module.split(".")[0] == "safetensors"]
        if isinstance(node, ast.ImportFrom) and node.module == "dsmoe.runs.checkpoint":
            found += [f"imports {alias.name}" for alias in node.names if "manifest" in alias.name]
        if isinstance(node, ast.Attribute) and node.attr in CHECKPOINT_FILE_ATTRIBUTES:
            found.append(f"reads .{node.attr}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and (node.value.id, node.attr) in FILE_CALLS:
            found.append(f"calls {node.value.id}.{node.attr}")
        if isinstance(node, ast.Constant) and node.value in CHECKPOINT_FILE_NAMES and relative not in HF_FORMAT:
            found.append(f"names {node.value!r}")
    return sorted(f"{relative} {offence}" for offence in found)


def test_only_runs_opens_checkpoint_files():
    assert [offence for path in outside_runs()
            for offence in offences(str(path.relative_to(SRC)), path.read_text())] == []


def test_the_check_finds_each_kind_of_offence():
    source = ("import torch\nfrom safetensors.torch import load_file\nfrom dsmoe.runs.checkpoint import read_manifest\n"
              "def f(c):\n    return torch.load(c.trainer_state_path), load_file('model.safetensors')\n")
    assert offences("analysis/x.py", source) == sorted(
        f"analysis/x.py {offence}" for offence in ("imports safetensors.torch", "imports read_manifest",
                                                     "calls torch.load", "reads .trainer_state_path",
                                                     "names 'model.safetensors'"))
    assert offences("interop/hf.py", "from safetensors import safe_open\n") == []
