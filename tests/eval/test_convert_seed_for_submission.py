"""SEED-Bench: exact-letter accuracy per question type, overall, image / video; the upload file."""

import json

import pytest

from llava.eval.benchmarks.seed.convert import main, score_seed, upload_lines
from llava.eval.core.scoring_io import read_jsonl, write_jsonl

DATA = {
    "question_type": {"Scene Understanding": 1, "Instance Identity": 2},
    "questions": [
        {"question_id": "1", "question_type_id": 1, "data_type": "image", "answer": "A"},
        {"question_id": "2", "question_type_id": 1, "data_type": "image", "answer": "B"},
        {"question_id": "3", "question_type_id": 2, "data_type": "image", "answer": "C"},
        {"question_id": "4", "question_type_id": 2, "data_type": "image", "answer": "D"},
        {"question_id": "5", "question_type_id": 2, "data_type": "video", "answer": "A"},
    ],
}
ANSWERS = [  # integer ids, as LLaVA's question file has them; the annotation uses strings
    {"question_id": 1, "prompt": "p", "text": "A"},    # right
    {"question_id": 2, "prompt": "p", "text": "B."},   # wrong: the letter must match exactly
    {"question_id": 3, "prompt": "p", "text": "C"},    # right
    # 4: no answer, wrong
    {"question_id": 5, "prompt": "p", "text": "A"},    # right
]


def test_accuracy_by_hand():
    r = score_seed(DATA, ANSWERS)
    assert r["accuracy"] == pytest.approx(60.0)                                 # 3 / 5
    assert r["per_type"]["Scene Understanding"]["accuracy"] == pytest.approx(50.0)     # 1 / 2
    assert r["per_type"]["Instance Identity"]["accuracy"] == pytest.approx(200 / 3)    # 2 / 3
    assert r["image"] == {"accuracy": 50.0, "questions": 4, "correct": 2}
    assert r["video"] == {"accuracy": 100.0, "questions": 1, "correct": 1}
    assert r["missing"] == 1


def test_lower_case_letter_is_wrong():
    assert score_seed(DATA, [{"question_id": 1, "text": "a"}])["per_type"]["Scene Understanding"]["correct"] == 0


def test_upload_lines_keep_annotation_ids_and_skip_unanswered():
    assert upload_lines(DATA, ANSWERS) == [
        {"question_id": "1", "prediction": "A"}, {"question_id": "2", "prediction": "B."},
        {"question_id": "3", "prediction": "C"}, {"question_id": "5", "prediction": "A"}]


def test_cli(tmp_path, capsys):
    (tmp_path / "SEED-Bench.json").write_text(json.dumps(DATA))
    write_jsonl(str(tmp_path / "merge.jsonl"), ANSWERS)
    upload = tmp_path / "answers_upload" / "m.jsonl"
    assert main(["--annotation-file", str(tmp_path / "SEED-Bench.json"), "--result-file", str(tmp_path / "merge.jsonl"),
                 "--result-upload-file", str(upload)]) == 0
    out = capsys.readouterr().out
    assert "SEED-Bench: accuracy 60.00% over 5 questions (image 50.00%, video 100.00%); 1 unanswered" in out
    assert len(read_jsonl(str(upload))) == 4
    assert json.loads((tmp_path / "merge.score.json").read_text())["image"]["accuracy"] == 50.0


def test_cli_annotation_without_answers(tmp_path, capsys):
    (tmp_path / "seed.json").write_text(json.dumps({"questions": [{"question_id": "1", "question_type_id": 1}]}))
    (tmp_path / "a.jsonl").write_text("")
    assert main(["--annotation-file", str(tmp_path / "seed.json"), "--result-file", str(tmp_path / "a.jsonl")]) == 2
    assert "question #1 lacks answer" in capsys.readouterr().err
