"""Without the `serve` extra, the server and `dsmoe serve` say how to install it."""

import subprocess
import sys

BLOCK_FASTAPI = "import sys; sys.modules['fastapi'] = None; "  # an import of fastapi now fails


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_FASTAPI + code], capture_output=True, text=True, timeout=120)


def test_importing_the_server_without_fastapi_names_the_install_command():
    result = run_python("import dsmoe.serve.http")
    assert result.returncode != 0 and "pip install 'dsmoe[serve]'" in result.stderr


def test_dsmoe_serve_without_fastapi_is_one_line_and_exit_2():
    result = run_python("from dsmoe.cli.main import main; sys.exit(main(['serve', '--run', 'nowhere']))")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "pip install 'dsmoe[serve]'" in result.stderr
