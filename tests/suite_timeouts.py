"""Timeouts of the tests' subprocesses and servers: there to catch a hang, never to time the code.

Each base value is a generous bound for a healthy run on a busy 2-core machine (several times what it takes
there). On a slower machine, or under a debugger, scale them all: `LLAVA_TEST_TIMEOUT_SCALE=4 python -m pytest`.
"""

from __future__ import annotations

import os

SCALE_VARIABLE = "LLAVA_TEST_TIMEOUT_SCALE"


def timeout_scale() -> float:
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        scale = float(raw)
    except ValueError:
        scale = float("nan")
    if not scale > 0 or scale == float("inf"):
        raise ValueError(f"{SCALE_VARIABLE} must be a positive number, got {raw!r}")
    return scale


def hang_timeout(seconds: float) -> float:
    """`seconds` times LLAVA_TEST_TIMEOUT_SCALE (default 1)."""
    return seconds * timeout_scale()
