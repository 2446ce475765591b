"""Qwen2-VL / Qwen2.5-VL budget by the ratio alone: the LLaVA-1.5 budget `max_num_trunction` every command fills in
with its default (128) is neither warned about unless the user sets another, nor part of Qwen's answer-file names."""

import json
import logging
import os
import subprocess

import pytest
from PIL import Image
from suite_timeouts import hang_timeout
from recording_python import fake_python

from llava.eval.cli.run_llava import main as run_llava
from llava.model.pruning.engine import _reported
from llava.model.tiny_qwen import build_tiny_qwen_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IGNORED = "is ignored on Qwen2-VL / Qwen2.5-VL"


@pytest.fixture(scope="module")
def qwen_ckpt(tmp_path_factory):
    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp("qwen") / "qwen2-vl-tiny", "qwen2_vl", seed=0)


def ask(qwen_ckpt, tmp_path, *budget):
    image = tmp_path / "img.png"
    Image.new("RGB", (56, 56), (10, 200, 30)).save(image)
    return run_llava(["--model-path", str(qwen_ckpt), "--image-file", str(image), "--query", "What colour?",
                      "--temperature", "0", "--max_new_tokens", "2", "--device", "cpu", "--sparse",
                      "--reduction_ratio", "0.5", *budget])


def test_a_qwen_run_that_never_sets_max_num_trunction_is_not_warned_about_it(qwen_ckpt, tmp_path, caplog):
    _reported.clear()
    with caplog.at_level(logging.WARNING):
        assert ask(qwen_ckpt, tmp_path) == 0
    assert IGNORED not in caplog.text


def test_a_qwen_run_that_sets_max_num_trunction_is_told_it_is_ignored(qwen_ckpt, tmp_path, caplog):
    _reported.clear()
    with caplog.at_level(logging.WARNING):
        assert ask(qwen_ckpt, tmp_path, "--max_num_trunction", "64") == 0
    assert f"max_num_trunction=64 {IGNORED}" in caplog.text


def answers_files(tmp_path, ckpt: str) -> list[str]:
    """The answers files scripts/v1_5/eval/pope.sh names for `ckpt` (a recording fake python: no model runs)."""
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    recorder = fake_python(tmp_path / "python", f'echo "$*" >> {log}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "NAME", "DART", "EVAL_ARGS")}
    env.update(PYTHON=str(recorder), CKPT=ckpt, DATA_ROOT=str(tmp_path / "data"))
    proc = subprocess.run(["bash", "scripts/v1_5/eval/pope.sh", "0.778"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=hang_timeout(300))
    assert proc.returncode == 0, proc.stderr
    calls = [call.split() for call in log.read_text().splitlines()]
    return [os.path.basename(c[c.index("--answers-file") + 1]) for c in calls if "--answers-file" in c]


@pytest.mark.parametrize("checkpoint, name", [
    ("local", "qwen2-vl-tiny-dart-0.778.jsonl"),
    ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL-7B-Instruct-dart-0.778.jsonl"),
    ("Qwen/Qwen2-VL-7B-Instruct", "Qwen2-VL-7B-Instruct-dart-0.778.jsonl"),
])
def test_qwen_answer_files_leave_the_unused_budget_out_of_their_names(tmp_path, checkpoint, name):
    if checkpoint == "local":
        local = tmp_path / "qwen2-vl-tiny"
        local.mkdir()
        (local / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "text_config": {
            "model_type": "qwen2_vl_text"}}))
        checkpoint = str(local)
    assert answers_files(tmp_path, checkpoint) == [name]


def test_llava_answer_files_keep_their_names(tmp_path):
    local = tmp_path / "llava-v1.5-7b"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"model_type": "llava", "mm_vision_tower": "clip"}))
    assert answers_files(tmp_path, str(local)) == ["llava-v1.5-7b-dart-0.778-128.jsonl"]
    assert answers_files(tmp_path, "liuhaotian/llava-v1.5-7b") == ["llava-v1.5-7b-dart-0.778-128.jsonl"]
