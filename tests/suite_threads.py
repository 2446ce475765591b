"""How many CPU threads a test's model subprocess gets.

Under pytest-xdist (scripts/run_tests.sh starts a worker per core) tests/conftest.py sets OMP_NUM_THREADS=1 in
each worker, which its subprocesses inherit: a worker per core, one thread each, never more threads than cores
(OpenMP's spinning threads slow everything down once they outnumber the cores). In a single pytest process a
model subprocess takes two threads, unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import os

WORKER_THREADS = "1"


def subprocess_threads() -> str:
    """The OMP_NUM_THREADS value for a test's model subprocess."""
    return os.environ.get("OMP_NUM_THREADS", "2")
