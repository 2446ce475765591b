"""VizWiz submission: EvalAI normalization (so "Unanswerable" -> "unanswerable"), all questions required."""

import json

import pytest

from llava.eval.benchmarks.vizwiz.convert import convert, main
from llava.eval.core.scoring_io import write_jsonl

QUESTIONS = [{"question_id": 0, "image": "VizWiz_test_00000000.jpg"},
             {"question_id": 1, "image": "VizWiz_test_00000001.jpg"}]


def test_convert():
    rows = convert([{"question_id": 1, "text": "The dog."}, {"question_id": 0, "text": "Unanswerable"}], QUESTIONS)
    assert rows == [{"image": "VizWiz_test_00000000.jpg", "answer": "unanswerable"},
                    {"image": "VizWiz_test_00000001.jpg", "answer": "dog"}]


def test_missing_answer_is_an_error():
    with pytest.raises(ValueError, match="1 of 2 VizWiz questions have no answer"):
        convert([{"question_id": 0, "text": "x"}], QUESTIONS)


def test_cli(tmp_path, capsys):
    write_jsonl(str(tmp_path / "q.jsonl"), QUESTIONS)
    write_jsonl(str(tmp_path / "a.jsonl"),
                [{"question_id": 0, "text": "unanswerable."}, {"question_id": 1, "text": "Two"}])
    dst = tmp_path / "answers_upload" / "m.json"
    assert main(["--annotation-file", str(tmp_path / "q.jsonl"), "--result-file", str(tmp_path / "a.jsonl"),
                 "--result-upload-file", str(dst)]) == 0
    assert "2 answers (1 unanswerable)" in capsys.readouterr().out
    assert [r["answer"] for r in json.loads(dst.read_text())] == ["unanswerable", "2"]


def test_cli_missing_answer_writes_nothing(tmp_path, capsys):
    write_jsonl(str(tmp_path / "q.jsonl"), QUESTIONS)
    write_jsonl(str(tmp_path / "a.jsonl"), [{"question_id": 0, "text": "x"}])
    dst = tmp_path / "up.json"
    assert main(["--annotation-file", str(tmp_path / "q.jsonl"), "--result-file", str(tmp_path / "a.jsonl"),
                 "--result-upload-file", str(dst)]) == 2
    assert not dst.exists()
    assert "have no answer" in capsys.readouterr().err
