"""The terminal chat, driven through its stdin."""

import io
import re
import subprocess
import sys

import pytest
from serve_helpers import scene_image
from suite_timeouts import hang_timeout

from llava.eval.cli import run_llava
from llava.serve import cli


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "scene.png"
    scene_image().save(path)
    return path


@pytest.mark.slow
def test_cli_chats_over_stdin_with_dart(tiny_ckpt, image_file):
    command = [sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_ckpt), "--image-file", str(image_file),
               "--device", "cpu", "--temperature", "0", "--max-new-tokens", "4",
               "--sparse", "--pruned_layer", "2", "--max_num_trunction", "64"]
    result = subprocess.run(command, input="What is in the picture?\nAnd the colour?\n", capture_output=True,
                            text=True, timeout=hang_timeout(900))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # "llava-tiny" has no "v1" in its name: LLaVA's rule picks the llava_v0 template (Human / Assistant).
    assert out.count("Human: ") == 3  # two questions, then the empty line that ends the chat
    assert out.count("Assistant: ") == 2
    kept = re.findall(r"\[DART kept (\d+) of (\d+) image tokens \(88\.2% pruned\), prefill \d+\.\d+ s\]", out)
    assert kept == [("68", "576"), ("68", "576")]  # 4 image pivots + 8 pivots x 64 // 8, on every turn

    # The first answer is the one-shot CLI's answer to the same question.
    first_answer = out.split("Assistant: ", 1)[1].split("\n[DART", 1)[0].strip()
    args = run_llava.parse_args(["--model-path", str(tiny_ckpt), "--image-file", str(image_file), "--query",
                                 "What is in the picture?", "--conv-mode", "llava_v0", "--temperature", "0",
                                 "--max_new_tokens", "4", "--device", "cpu", "--sparse", "--max_num_trunction", "64"])
    text, record, _ = run_llava.answer(args)
    assert first_answer == text
    assert record.num_kept_image_tokens() == 68


def test_cli_without_pruning_and_end_of_input(tiny_ckpt, image_file):
    args = cli.parse_args(["--model-path", str(tiny_ckpt), "--image-file", str(image_file), "--device", "cpu",
                           "--temperature", "0", "--max-new-tokens", "2", "--conv-mode", "vicuna_v1"])
    stdout = io.StringIO()
    assert cli.chat(args, stdin=io.StringIO("Hi?"), stdout=stdout) == 0  # no trailing newline: EOF ends it
    out = stdout.getvalue()
    assert out.startswith("USER: ASSISTANT: ")
    assert "[no pruning: 576 image tokens, prefill" in out
    assert out.endswith("USER: \n")


def test_cli_reports_a_missing_image_clearly(tmp_path, capsys):
    assert cli.main(["--image-file", str(tmp_path / "nope.png"), "--device", "cpu"]) == 2
    assert f"error: image file not found: {tmp_path / 'nope.png'}" in capsys.readouterr().err


def test_cli_reports_an_oversized_image_clearly(tmp_path, capsys, write_bomb_png):
    bomb = write_bomb_png(tmp_path / "bomb.png")
    assert cli.main(["--image-file", str(bomb), "--device", "cpu"]) == 2
    assert f"error: cannot read image {bomb}: too large" in capsys.readouterr().err
