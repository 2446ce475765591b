"""The suite on a slow machine: the `slow` marker is registered (and markers are strict), the README's fast-set
command leaves the slow tests out, and the subprocess timeouts catch hangs without timing the code (they scale
with LLAVA_TEST_TIMEOUT_SCALE)."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from suite_timeouts import SCALE_VARIABLE, hang_timeout

REPO = Path(__file__).resolve().parents[1]
PYTEST_OPTIONS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]


def documented_fast_set_command() -> list[str]:
    """The README's command for the fast set, as words."""
    found = re.findall(r"^(python -m pytest .*-m \"not slow\".*)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert found, "the README shows no `python -m pytest -m \"not slow\"` command"
    return shlex.split(found[0], comments=True)


def test_the_slow_marker_is_registered_and_markers_are_strict():
    assert any(marker.startswith("slow:") for marker in PYTEST_OPTIONS["markers"])
    assert "--strict-markers" in PYTEST_OPTIONS["addopts"].split()  # a misspelt `@pytest.mark.slwo` is an error


def collect(command: list[str], *paths: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The test ids `command` (python -m pytest ...) selects among `paths`, collected only."""
    assert command[:3] == ["python", "-m", "pytest"]
    proc = subprocess.run([sys.executable, *command[1:], "--collect-only", "-q", "-p", "no:cacheprovider", *extra,
                           *paths], cwd=REPO, capture_output=True, text=True, timeout=hang_timeout(600))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", proc.stdout), proc.stdout
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_the_documented_fast_set_leaves_out_the_slow_tests():
    # This file has both kinds; without the shared conftest (torch) the collection takes a second.
    selected = collect(documented_fast_set_command(), "tests/test_suite_markers.py", extra=("--noconftest",))
    assert "tests/test_suite_markers.py::test_the_slow_marker_is_registered_and_markers_are_strict" in selected
    assert not any("eval_scripts" in line for line in selected)


@pytest.mark.slow
def test_the_fast_set_of_the_eval_scripts_leaves_out_their_end_to_end_runs():
    selected = collect(documented_fast_set_command(), "tests/eval/test_eval_scripts.py")
    assert any("test_script_runs_llavas_commands[textvqa]" in line for line in selected)
    assert not any("end_to_end" in line or "batch_size_8" in line for line in selected)


def test_timeouts_scale_with_the_environment(monkeypatch):
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    assert hang_timeout(300) == 300
    monkeypatch.setenv(SCALE_VARIABLE, "2.5")
    assert hang_timeout(300) == 750
    for bad in ("0", "-1", "fast", "inf"):
        monkeypatch.setenv(SCALE_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{SCALE_VARIABLE} must be a positive number"):
            hang_timeout(300)


SUBPROCESS_CALLS = {"run", "check_output", "check_call", "communicate"}


def literal_subprocess_timeouts(path: Path) -> list[int]:
    """Lines of `path` where a subprocess call (subprocess.run / check_output / check_call, Popen.communicate) has a
    fixed number as its timeout, one that does not scale."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SUBPROCESS_CALLS:
            for keyword in node.keywords:
                if keyword.arg == "timeout" and isinstance(keyword.value, ast.Constant):
                    lines.append(node.lineno)
    return lines


def test_no_subprocess_in_the_tests_has_a_fixed_timeout():
    fixed = {str(path.relative_to(REPO)): lines for path in sorted((REPO / "tests").rglob("*.py"))
             if (lines := literal_subprocess_timeouts(path))}
    assert not fixed, f"wrap these subprocess timeouts in suite_timeouts.hang_timeout: {fixed}"
