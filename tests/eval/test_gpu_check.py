"""scripts/gpu_check.sh: fails at once and clearly without a GPU; its comparisons count what they say; its whole
code path runs (on the CPU, tiny sizes) and reports every method and check."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from suite_timeouts import hang_timeout

from llava.eval.speed import gpu_check
from llava.model.pruning import method_names

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_script_fails_at_once_and_says_why_on_a_machine_without_a_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=hang_timeout(300))
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_model_is_loaded_before_the_gpu_is_found_missing(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def must_not_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the device check")

    monkeypatch.setattr(gpu_check, "load_model", must_not_load)
    assert gpu_check.main([]) == 2
    assert "--device cpu --smoke" in capsys.readouterr().err


def test_kept_comparison_counts_questions_and_swapped_tokens():
    comparison = gpu_check.KeptComparison()
    comparison.add([(0, 1), (0, 2), (0, 3), (0, 4)], [(0, 1), (0, 2), (0, 3), (0, 4)])  # identical
    comparison.add([(0, 1), (0, 2), (0, 3), (0, 4)], [(0, 1), (0, 2), (0, 5), (0, 6)])  # two swapped
    comparison.add([(0, 1), (0, 2)], [(1, 1), (1, 2)])  # same offsets in another image: both swapped
    assert (comparison.questions, comparison.differing_questions) == (3, 2)
    assert (comparison.swapped_tokens, comparison.kept_tokens) == (4, 10)
    assert comparison.swapped_fraction == pytest.approx(0.4)
    assert comparison.describe().startswith("1/3 questions identical; 4 of 10 kept tokens swapped (40.0%)")


@pytest.mark.slow
def test_the_whole_check_runs_on_the_cpu_in_smoke_mode(capsys):
    assert gpu_check.main(["--device", "cpu", "--smoke"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("check "):].strip().splitlines()
    rows = {tuple(re.split(r"\s{2,}", line, maxsplit=3)[:3]) for line in lines[1:-1]}  # (check, setting, verdict)
    for checkpoint in ("llava-v1.5-tiny", "llava-v1.6-tiny"):
        for method in method_names():
            assert any(row[:2] == ("methods", f"{checkpoint} {method}") for row in rows), method
        assert ("precision", f"{checkpoint} sdpa bfloat16", "ok") in rows
        assert ("batching", f"{checkpoint} batch 2 vs 1, fp32 sdpa", "ok") in rows
    assert ("prefill", "smoke", "ok") in rows
    assert not any(row[2] == "FAIL" for row in rows)
    assert lines[-1].startswith("gpu check: ") and " 0 failed" in lines[-1]
