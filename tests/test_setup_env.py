"""scripts/setup_env.sh's torch step: the pinned release by default, a CUDA (or CPU) build from the PyTorch index
with TORCH_BUILD, replacing another build already in the venv; run against a recording fake venv (no installs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from suite_timeouts import hang_timeout

REPO = Path(__file__).resolve().parents[1]


def fake_venv(root: Path, torch_version: str | None) -> tuple[Path, Path]:
    """A venv whose python logs every pip call and reports `torch_version` as installed (None: no torch)."""
    log = root / "pip.log"
    python = root / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    import_torch = f'echo "{torch_version}"' if torch_version else "exit 1"
    python.write_text(f"""#!/usr/bin/env bash
case "$*" in
  "-m pip install "*) echo "${{*:4}}" >> {log} ;;
  *"import torch; print(torch.__version__)"*) {import_torch} ;;
  *) echo "fake" ;;
esac
""")
    python.chmod(0o755)
    return python.parent.parent, log


def torch_installs(venv: Path, log: Path, **env: str) -> list[str]:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "setup_env.sh")], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "LLAVA_VENV": str(venv), **env}, timeout=hang_timeout(300))
    assert proc.returncode == 0, proc.stderr
    return [line for line in log.read_text().splitlines() if "torch" in line]


@pytest.mark.parametrize("installed, env, expected", [
    (None, {}, ["--quiet --disable-pip-version-check torch==2.13.0"]),
    ("2.13.0+cpu", {}, []),  # a torch already there is kept
    ("2.13.0+cpu", {"TORCH_BUILD": "cu128"},
     ["--quiet --disable-pip-version-check torch==2.13.0+cu128 --index-url https://download.pytorch.org/whl/cu128"]),
    ("2.13.0+cu128", {"TORCH_BUILD": "cu128"}, []),
    (None, {"TORCH_BUILD": "cpu"},
     ["--quiet --disable-pip-version-check torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu"]),
], ids=["none", "kept", "cuda-replaces-cpu", "cuda-there", "cpu-build"])
def test_the_torch_step_installs_the_build_asked_for(tmp_path, installed, env, expected):
    venv, log = fake_venv(tmp_path, installed)
    assert torch_installs(venv, log, **env) == expected
