"""The eval workers, run_llava and the terminal chat on tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoints: prompts
through the model's chat template, DART by reduction ratio, and batch 3 writing batch 1's answers file."""

import io
import json
import logging
import re
from pathlib import Path

import pytest
from PIL import Image

from llava.eval.workers import model_vqa_loader
from llava.eval.cli import run_llava
from llava.model.families import load_model
from llava.model.tiny_qwen import FAMILIES, build_tiny_qwen_checkpoint
from llava.serve import cli

POPE = ("playground/data/eval/pope/llava_pope_test.jsonl", "playground/data/eval/pope/val2014")


@pytest.fixture(scope="module", params=FAMILIES)
def checkpoint(request, tmp_path_factory):
    return build_tiny_qwen_checkpoint(tmp_path_factory.mktemp(request.param) / f"{request.param}-tiny", request.param)


def answers(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "answer_id"} for line in lines]


def test_a_qwen_checkpoint_answers_through_its_chat_template_at_any_batch_size(checkpoint, tmp_path, capsys):
    questions = tmp_path / "questions.jsonl"
    with open(POPE[0]) as f:
        questions.write_text("".join(f.readlines()[:12]))
    written = {}
    for batch in (1, 3):
        out = tmp_path / f"answers_{batch}.jsonl"
        argv = ["--model-path", str(checkpoint), "--question-file", str(questions), "--image-folder", POPE[1],
                "--answers-file", str(out), "--temperature", "0", "--max_new_tokens", "3", "--sparse",
                "--reduction_ratio", "0.5", "--batch-size", str(batch)]
        assert model_vqa_loader.main(argv) == 0
        written[batch] = answers(out)
    assert written[1] == written[3] and len(written[1]) == 12
    # 64 image tokens per sample image (the tiny processor's max_pixels); T = int(64 * 0.5 / 8) = 4: 4 + 8 * 4.
    assert {line["metadata"]["image_tokens"] for line in written[1]} == {64}
    assert {line["metadata"]["image_tokens_kept"] for line in written[1]} == {36}
    assert "image tokens kept per question 36.0 of 64.0" in capsys.readouterr().out


def test_the_prompt_is_the_models_chat_template(checkpoint):
    loaded = load_model(str(checkpoint), None, device="cpu")
    inputs = loaded.question_inputs("Is there a red square?", [Image.new("RGB", (56, 56))], None)
    text = loaded.tokenizer.decode(inputs.input_ids)
    # Qwen2-VL's and Qwen2.5-VL's templates open with a default system turn; Qwen3-VL's has none.
    system = "" if loaded.model.config.model_type == "qwen3_vl" else \
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert text.startswith(system + "<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert text.endswith("<|vision_end|>Is there a red square?<|im_end|>\n<|im_start|>assistant\n")
    assert inputs.text.endswith("<|vision_end|>Is there a red square?<|im_end|>\n<|im_start|>assistant\n")
    assert int((inputs.token_inputs["mm_token_type_ids"] == 1).sum()) == inputs.image_inputs["image_grid_thw"].prod() // 4


def test_run_llava_answers_with_a_qwen_checkpoint(checkpoint, caplog):
    image = sorted(Path(POPE[1]).iterdir())[0]
    argv = ["--model-path", str(checkpoint), "--image-file", str(image), "--query", "Is there a red square?",
            "--device", "cpu", "--temperature", "0", "--max_new_tokens", "3", "--sparse", "--reduction_ratio", "0.5"]
    with caplog.at_level(logging.INFO, logger="llava.run_llava"):
        assert run_llava.main(argv) == 0
    assert "DART kept 36 of 64 image tokens" in caplog.text


def test_the_terminal_chat_talks_to_a_qwen_checkpoint_and_its_first_answer_is_run_llavas(checkpoint, capsys):
    image = sorted(Path(POPE[1]).iterdir())[0]
    flags = ["--model-path", str(checkpoint), "--image-file", str(image), "--device", "cpu", "--temperature", "0",
             "--sparse", "--reduction_ratio", "0.5"]
    out = io.StringIO()
    questions = io.StringIO("Is there a red square?\nAnd a circle?\n")
    assert cli.chat(cli.parse_args(flags + ["--max-new-tokens", "4"]), stdin=questions, stdout=out) == 0
    text = out.getvalue()
    assert text.count("user: ") == 3 and text.count("assistant: ") == 2
    assert re.findall(r"\[DART kept (\d+) of (\d+) image tokens", text) == [("36", "64"), ("36", "64")]
    first = text.split("assistant: ", 1)[1].split("\n[DART", 1)[0].strip()
    one_shot, _, _ = run_llava.answer(run_llava.parse_args(flags + ["--query", "Is there a red square?",
                                                                    "--max_new_tokens", "4"]))
    assert first == one_shot
