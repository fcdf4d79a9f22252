#!/usr/bin/env bash
# The test suite: sets up .venv if needed, then runs pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
exec python -m pytest tests "$@"
