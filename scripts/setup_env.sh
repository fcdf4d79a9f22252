#!/usr/bin/env bash
# Creates (once) the project-local venv .venv with the CPU build of torch and dsmoe installed editable.
# Sourced by scripts/demo.sh and scripts/test.sh; re-installs only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
TORCH_CPU_PIN="torch==2.13.0"  # the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "$TORCH_CPU_PIN"
  .venv/bin/python -m pip install --quiet -e ".[test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
# Headless Chromium and its driver, from Debian, for the browser test of the analysis report.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
export PATH="$PWD/.venv/bin:$PATH"
