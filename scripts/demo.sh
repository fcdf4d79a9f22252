#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs `dsmoe demo` (same flags: --minutes, --out, --set).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
exec dsmoe demo "$@"
