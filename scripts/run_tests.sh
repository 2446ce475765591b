#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the test suite (what CI runs). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
exec .venv/bin/python -m pytest "$@"
