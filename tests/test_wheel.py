"""What ships is what runs: the wheel, installed into a fresh venv, runs `dsmoe demo` outside the source tree.

The fresh venv reuses the test venv's installed dependencies (torch etc.) through a .pth file instead of
installing them again, but dsmoe itself comes from the wheel. The wheel is built from a copy of the sources:
an in-tree build would write build/ and *.egg-info into the checkout, and a stale build/lib would ship
modules deleted since.
"""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from dsmoe.demo import DEMO_CONFIG
from train.tiny import cli_env

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
# The demo at the size of the other CLI tests, so that its 0.1 minutes of training dominate the test's time.
SMALL_DEMO = {"model.hidden_size": 64, "model.n_heads": 2, "model.n_layers": 2, "model.intermediate_size": 128,
              "model.moe_intermediate_size": 32, "model.n_routed_experts": 4, "model.n_activated_experts": 2,
              "model.vocab_size": 512, "data.seq_len": 32, "train.batch_size": 4, "train.warmup_steps": 2}


def test_the_readme_config_is_the_demo_config_the_package_ships():
    assert (REPO / "configs" / "tiny.toml").resolve() == DEMO_CONFIG.resolve()


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A venv with only the dsmoe wheel installed; everything else is the test venv's."""
    tmp = tmp_path_factory.mktemp("wheel")
    sources = tmp / "sources"
    shutil.copytree(REPO / "src", sources / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, sources / name)
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp / "dist", sources],
                   check=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                                   capture_output=True, text=True).stdout.strip()
    test_venv_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site_packages) / "test_venv.pth").write_text("\n".join(test_venv_paths) + "\n")
    subprocess.run([*PIP, "--python", python, "install", "--no-deps", "--no-index", *(tmp / "dist").glob("*.whl")],
                   check=True)
    return venv


def run_in(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in cli_env().items() if key != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_dsmoe_is_imported_from_the_wheel(fresh_venv, tmp_path):
    found = run_in(fresh_venv, tmp_path, "python", "-c",
                   "import importlib.util; print(importlib.util.find_spec('dsmoe').origin)")  # without importing it
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(fresh_venv)


def test_installed_demo_runs_outside_the_repository_on_its_packaged_config(fresh_venv, tmp_path):
    overrides = {**SMALL_DEMO, "data.cache_dir": f'"{tmp_path / "cache"}"'}
    finished = run_in(fresh_venv, tmp_path, "dsmoe", "demo", "--minutes", "0.1",
                      *(arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")))
    assert finished.returncode == 0, finished.stderr
    assert "finished:" in finished.stdout or "stopped by the time budget at step" in finished.stdout
    for line in ("validation: loss", "expert load per MoE layer", "ROMEO:", "run directory"):
        assert line in finished.stdout
    [run_dir] = (tmp_path / "runs").iterdir()  # the default --out, under the working directory
    assert {"checkpoints", "metrics.jsonl", "config.toml", "tokenizer.json", "loss.png"} <= \
        {path.name for path in run_dir.iterdir()}
    assert "lr = 0.003" in (run_dir / "config.toml").read_text()  # the demo's tiny.toml, not the default 1e-3
