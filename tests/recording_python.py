"""A stand-in interpreter for the scripts' tests: it runs a shell body (usually: record its arguments) instead of
the workers and scorers, except the runner's reading of a benchmark's plan from the registry
(`-m llava.eval.benchmarks plan`), which the real interpreter answers."""

from __future__ import annotations

import stat
import sys
from pathlib import Path


def fake_python(path: Path, body: str) -> Path:
    registry = f'if [[ "$1 $2" == "-m llava.eval.benchmarks" ]]; then exec {sys.executable} "$@"; fi\n'
    path.write_text("#!/usr/bin/env bash\n" + registry + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path
