#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the test suite (what CI runs). Extra args go to pytest.
# The tests run in LLAVA_TEST_WORKERS processes (pytest-xdist; default: one per core, at most 4; 0 runs them in
# this process). Each worker and the model subprocesses it starts compute on one thread (tests/conftest.py), so
# the busy threads never outnumber the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
cores=$(nproc 2>/dev/null || echo 1)
workers=${LLAVA_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
if ! [[ $workers =~ ^[0-9]+$ ]]; then
    echo "error: LLAVA_TEST_WORKERS must be a whole number (0: no worker processes), got '$workers'" >&2
    exit 2
fi
# worksteal: an idle worker takes queued tests from a busy one, so one long test file does not hold up the run.
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
