#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs the dsmoe demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
exec python -m dsmoe.demo "$@"
