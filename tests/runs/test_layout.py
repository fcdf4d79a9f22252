"""The run directory's layout: each file name is written once, in dsmoe.runs.layout; checkpoints list in step order."""

import ast
from pathlib import Path

import dsmoe
from dsmoe.runs import RunDir
from dsmoe.runs.layout import CHECKPOINT_PREFIX

SOURCE = Path(dsmoe.__file__).parent
LAYOUT = SOURCE / "runs" / "layout.py"
# A Hugging Face directory's own file names (transformers' conventions), which happen to equal two of the run's.
HF_NAMES = {(SOURCE / "interop" / "hf.py", "tokenizer.json"), (SOURCE / "interop" / "hf_files.py", "model.safetensors")}


def run_file_names() -> set[str]:
    run = RunDir("RUN")
    checkpoint = run.checkpoint(1)
    paths = [run.config_path, run.tokenizer_path, run.metrics_path, run.tensorboard_dir, run.loss_plot_path,
             run.lock_path, run.checkpoints_dir, checkpoint.weights_path, checkpoint.trainer_state_path,
             checkpoint.config_path, checkpoint.manifest_path]
    return {path.name for path in paths} | {CHECKPOINT_PREFIX}


def code_strings(path: Path) -> list[str]:
    """The string literals of a module, f-string pieces included, docstrings left out (prose may name files)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_but_the_layout_spells_a_run_file_name():
    names = run_file_names()
    found = [(str(path.relative_to(SOURCE)), value) for path in sorted(SOURCE.rglob("*.py")) if path != LAYOUT
             for value in code_strings(path) if value in names and (path, value) not in HF_NAMES]
    assert found == []


def test_the_layout_spells_each_name_once():
    strings = code_strings(LAYOUT)
    assert sorted(name for name in run_file_names() if strings.count(name) != 1) == []


def test_checkpoints_list_complete_ones_in_step_order(tmp_path):
    run = RunDir(tmp_path)
    assert run.checkpoints() == [] and run.latest_checkpoint() is None
    for step in (10, 2, 100):
        run.checkpoint(step).path.mkdir(parents=True)
    (run.checkpoints_dir / f".{run.checkpoint(200).path.name}.x.tmp").mkdir()  # a checkpoint being written
    assert [checkpoint.path.name for checkpoint in run.checkpoints()] == ["step_00000002", "step_00000010",
                                                                         "step_00000100"]
    assert run.latest_checkpoint() == run.checkpoint(100)
