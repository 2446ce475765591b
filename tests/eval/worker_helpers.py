"""Shared by the worker tests: a tiny TextVQA-style question set, the worker flags, and answer reading."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

NUM_QUESTIONS = 7
SMALL_SET = 3  # questions of the `qa_set` fixture (tests/eval/conftest.py): runs that only need a few answers
# Greedy, a few tokens, pruned to 4 + 64 image tokens: what every worker test runs (the random tiny model
# never stops by itself, so max_new_tokens sets the length).
GENERATION_FLAGS = ["--temperature", "0", "--conv-mode", "vicuna_v1", "--max_new_tokens", "3"]
DART_FLAGS = ["--sparse", "--pruned_layer", "2", "--pivot_image_token", "4", "--pivot_text_token", "4",
              "--attn_implementation", "sdpa", "--reduction_ratio", "0.778", "--max_num_trunction", "64"]


def question_text(i: int) -> str:
    return f"what is shown in part {i}?\nReference OCR token: red, box\nAnswer the question using a single word or phrase."


def write_textvqa_set(root: Path, n: int = NUM_QUESTIONS) -> tuple[Path, Path]:
    """TextVQA's layout under `root`: question JSONL, images, annotations. Two questions per image share the
    image id as question_id, as in LLaVA's llava_textvqa_val_v051_ocr.jsonl. Returns (questions, images)."""
    images = root / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    questions = root / "llava_textvqa_val_v051_ocr.jsonl"
    annotations = []
    with open(questions, "w") as f:
        for i in range(n):
            image_id = f"img{i // 2}"
            Image.new("RGB", (120 + 20 * i, 90), (30 * i, 200 - 20 * i, 90)).save(images / f"{image_id}.jpg")
            f.write(json.dumps({"question_id": image_id, "image": f"{image_id}.jpg", "text": question_text(i)}) + "\n")
            annotations.append({"image_id": image_id, "question_id": 100 + i,
                                "question": question_text(i).split("\n")[0], "answers": ["red"] * 10})
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"data": annotations}))
    return questions, images


def read_answers(path: Path, keep_ids: bool = False) -> list[dict]:
    """Answer lines; without `answer_id` (random per run) unless asked."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return lines if keep_ids else [{k: v for k, v in line.items() if k != "answer_id"} for line in lines]


def loader_args(ckpt, qa_set: tuple[Path, Path], answers, *extra: str) -> list[str]:
    """model_vqa_loader's command line for `qa_set` (questions, images), on the CPU, greedy, pruned."""
    questions, images = qa_set
    return ["--model-path", str(ckpt), "--question-file", str(questions), "--image-folder", str(images),
            "--answers-file", str(answers), "--device", "cpu", *GENERATION_FLAGS, *DART_FLAGS, *extra]
