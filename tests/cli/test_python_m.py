"""`python -m dsmoe` is the `dsmoe` command (torchrun and other launchers start modules with -m)."""

import subprocess
import sys

from dsmoe.cli.main import main
from train.tiny import cli_env


def test_python_m_dsmoe_prints_what_the_command_prints(capsys):
    args = ["params", "--preset", "tiny"]
    ran = subprocess.run([sys.executable, "-m", "dsmoe", *args], capture_output=True, text=True, env=cli_env(),
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert main(args) == 0
    assert ran.stdout == capsys.readouterr().out and "routed_experts" in ran.stdout
