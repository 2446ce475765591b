"""The OCRBench and Q-Bench workers: LLaVA's prompts (written out here), ids by position, clear errors,
and a run on the embedded default whose answers the scorers read."""

import argparse
import json

import pytest

from llava.eval.benchmarks.ocrbench import worker as model_vqa_ocrbench
from llava.eval.benchmarks.qbench import worker as model_vqa_qbench
from llava.eval.core.questions import QuestionFileError, read_json_list_by_position
from worker_helpers import GENERATION_FLAGS, read_answers


def _rows(tmp_path, entries):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(entries))
    return read_json_list_by_position(str(path))


def test_qbench_prompts_are_llavas(tmp_path):
    rows = _rows(tmp_path, [{"img_path": "x.jpg", "question": "Is it blurry?", "candidates": ["Yes", "No"]},
                            {"img_path": "y.jpg", "question": "How sharp?", "candidates": ["low", "mid", "high"]}])
    en = argparse.Namespace(image_folder="imgs/", lang="en")
    (first,), (second,) = (model_vqa_qbench.qbench_items(row, en) for row in rows)
    assert first.text == "Is it blurry?\nChoose between one of the options as follows:\nA. Yes\nB. No\n"
    assert second.text == "How sharp?\nChoose between one of the options as follows:\nA. low\nB. mid\nC. high\n"
    assert [first.record["question_id"], second.record["question_id"]] == [0, 1]
    assert first.images[0].path == "imgs/x.jpg"
    (zh,) = model_vqa_qbench.qbench_items(rows[0], argparse.Namespace(image_folder="imgs/", lang="zh"))
    assert zh.text == "Is it blurry?\\在下列选项中选择一个:\nA. Yes\nB. No\n"  # LLaVA's text, backslash included


def test_qbench_bad_candidates_name_the_entry(tmp_path):
    (row,) = _rows(tmp_path, [{"img_path": "x.jpg", "question": "q", "candidates": ["a", "b", "c", "d", "e"]}])
    with pytest.raises(QuestionFileError, match=r"questions\.json\[0\]: 'candidates' must be a list of 1-4 strings"):
        model_vqa_qbench.qbench_items(row, argparse.Namespace(image_folder="", lang="en"))


def test_ocrbench_prompt_and_ids_by_position(tmp_path):
    rows = _rows(tmp_path, [
        {"dataset_name": "IIIT5K", "id": 7, "image_path": "IIIT5K/a.png", "question": "what is written in the image?",
         "answers": "CAT", "type": "Regular Text Recognition"},
        {"dataset_name": "svt", "id": 7, "image_path": "svt/b.jpg", "question": "what is written in the image?",
         "answers": "dog", "type": "Regular Text Recognition"},
    ])
    items = [item for row in rows for item in model_vqa_ocrbench.ocrbench_items(row, argparse.Namespace(image_folder="I"))]
    assert items[0].text == "what is written in the image?\nAnswer the question using a single word or phrase."
    assert [i.record["question_id"] for i in items] == [0, 1]  # OCRBench's own ids repeat
    assert [i.images[0].path for i in items] == ["I/IIIT5K/a.png", "I/svt/b.jpg"]


def test_qbench_worker_takes_llavas_flags_and_its_answers_score(tiny_ckpt, tmp_path):
    from PIL import Image

    from llava.eval.benchmarks.qbench.scorer import score_qbench

    (tmp_path / "images").mkdir()
    entries = []
    for k, color in enumerate(("red", "blue", "green")):
        Image.new("RGB", (64, 64), color).save(tmp_path / "images" / f"{k}.jpg")
        entries.append({"img_path": f"{k}.jpg", "question": "What colour is it?", "candidates": ["red", "blue", "green"],
                        "correct_ans": color, "type": 2, "concern": k})
    questions = tmp_path / "llvisionqa_dev.json"
    questions.write_text(json.dumps(entries))
    answers = tmp_path / "answers.jsonl"
    assert model_vqa_qbench.main(["--model-path", str(tiny_ckpt), "--questions-file", str(questions),
                                  "--image-folder", str(tmp_path / "images") + "/", "--answers-file", str(answers),
                                  "--lang", "zh", *GENERATION_FLAGS]) == 0
    lines = read_answers(answers)
    assert [line["question_id"] for line in lines] == [0, 1, 2]
    assert all("\\在下列选项中选择一个:" in line["prompt"] for line in lines)
    assert score_qbench(entries, lines)["questions"] == 3
