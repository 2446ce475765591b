"""OCRBench: the official substring rule (HME100k: spaces removed, case kept), the score per type, the files."""

import json

import pytest

from llava.eval.benchmarks.ocrbench.scorer import is_right, main, score_ocrbench
from llava.eval.core.scoring_io import write_jsonl


@pytest.mark.parametrize("prediction, answers, dataset, right", [
    ("The word is centre.", "CENTRE", "IIIT5K", True),        # lower-cased, found inside the prediction
    ("cent", "CENTRE", "IIIT5K", False),                      # the answer must be in the prediction, not the reverse
    ("B", ["a", "b"], "textVQA", True),                       # any of a list of answers
    ("c", ["a", "b"], "textVQA", False),
    ("hello world", "Hello\nWorld", "FUNSD", True),           # line breaks become spaces
    ("  Paris \n", " paris", "STVQA", True),                   # stripped
    ("x^{2}", "x ^ { 2 }", "HME100k", True),                  # formulas: every space removed
    ("X^{2}", "x ^ { 2 }", "HME100k", False),                 # ... and case kept
    ("x ^ { 2 }+1", "x^{2}", "HME100k", True),
])
def test_official_rule(prediction, answers, dataset, right):
    assert is_right(prediction, answers, dataset) is right


ENTRIES = [
    {"dataset_name": "IIIT5K", "id": 7, "image_path": "a.png", "question": "q", "answers": "CAT",
     "type": "Regular Text Recognition"},
    {"dataset_name": "IC15_1811", "id": 7, "image_path": "b.png", "question": "q", "answers": "DOG",
     "type": "Irregular Text Recognition"},
    {"dataset_name": "docVQA", "id": 1, "image_path": "c.png", "question": "q", "answers": ["12", "twelve"],
     "type": "Doc-oriented VQA"},
    {"dataset_name": "docVQA", "id": 2, "image_path": "d.png", "question": "q", "answers": ["3"],
     "type": "Doc-oriented VQA"},
    {"dataset_name": "HME100k", "id": 3, "image_path": "e.png", "question": "q", "answers": "a + b",
     "type": "Handwritten Mathematical Expression Recognition"},
]
ANSWERS = [  # question_id = position; ids 0 and 1 share OCRBench id 7
    {"question_id": 0, "text": "cat"},             # right
    {"question_id": 1, "text": "dig"},             # wrong
    {"question_id": 2, "text": "Twelve."},         # right
    # 3: unanswered, wrong
    {"question_id": 4, "text": "a+b"},             # right
]


def test_score_by_hand():
    result, per_entry = score_ocrbench(ENTRIES, ANSWERS)
    assert result["score"] == 3 and result["questions"] == 5 and result["accuracy"] == pytest.approx(60.0)
    assert result["text_recognition"] == {"correct": 1, "questions": 2}
    assert result["per_type"]["Doc-oriented VQA"] == {"correct": 1, "questions": 2}
    assert result["per_type"]["Handwritten Mathematical Expression Recognition"] == {"correct": 1, "questions": 1}
    assert list(result["per_type"])[:2] == ["Regular Text Recognition", "Irregular Text Recognition"]
    assert result["per_dataset"]["docVQA"]["accuracy"] == pytest.approx(50.0)
    assert result["missing"] == 1 and result["unmatched"] == 0
    assert [e.get("result") for e in per_entry] == [1, 0, 1, None, 1]
    assert per_entry[2]["predict"] == "Twelve." and "predict" not in per_entry[3]


def test_cli_writes_score_and_results(tmp_path, capsys):
    annotation, answers = tmp_path / "OCRBench.json", tmp_path / "answers" / "m.jsonl"
    annotation.write_text(json.dumps(ENTRIES))
    write_jsonl(str(answers), ANSWERS + [{"question_id": 9, "text": "stray"}])
    assert main(["--annotation-file", str(annotation), "--result-file", str(answers),
                 "--output-file", str(tmp_path / "results" / "m_OCRBench.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OCRBench: score 3 of 5 (60.00%; the full set has 1000): text recognition 1/2, "
                          "Doc-oriented VQA 1/2, Handwritten Mathematical Expression Recognition 1/1; 1 unanswered")
    saved = json.loads((tmp_path / "answers" / "m.score.json").read_text())
    assert saved["score"] == 3 and saved["unmatched"] == 1
    assert [e.get("result") for e in json.loads((tmp_path / "results" / "m_OCRBench.json").read_text())] == \
        [1, 0, 1, None, 1]


def test_bad_answers_field_is_an_error_naming_the_entry(tmp_path, capsys):
    annotation, answers = tmp_path / "OCRBench.json", tmp_path / "m.jsonl"
    annotation.write_text(json.dumps([{**ENTRIES[0], "answers": 12}]))
    write_jsonl(str(answers), [])
    assert main(["--annotation-file", str(annotation), "--result-file", str(answers)]) == 2
    assert "entry #0: 'answers' must be a string or a list of strings" in capsys.readouterr().err
