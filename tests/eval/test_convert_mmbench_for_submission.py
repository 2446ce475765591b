"""MMBench: exact-matching answer extraction, the circular rule, the submission table and file."""

import csv
import json
import sys

import pytest

from llava.eval.benchmarks.mmbench.convert import (circular_accuracy, infer_answer, infer_option_letter, main,
                                                       read_tsv, submission_table)
from llava.eval.core.scoring_io import write_jsonl

COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
           "comment", "split"]


@pytest.mark.parametrize("answer, expected", [
    ("A", "A"),
    ("B.", "B"),
    ("The answer is (C).", "C"),
    ("Option D: a cat", "D"),              # no bare letter; "D:" is the only letter decorated with ":"
    ("I choose B because A is wrong", False),  # two bare letters
    ("A dog is on the sofa", False),       # "A" among more than 3 words may be the article
    ("C", "C"),
    ("E", "E"),                            # letters up to E are recognised
])
def test_infer_option_letter(answer, expected):
    assert infer_option_letter(answer) == expected


def test_infer_answer_falls_back_to_option_text():
    choices = {"A": "teddy bear", "B": "rabbit", "C": "cat", "D": "dog"}
    assert infer_answer("a cute Teddy Bear", choices) == "A"
    assert infer_answer("a cat and a dog", choices) is False   # two options named


def row(index, answer, category, options=("w", "x", "y", "z")):
    r = dict(zip(COLUMNS, [index, "Which?", "nan", *options, answer, category, "IMG", "src", "l2", "nan", "dev"]))
    r["index"] = index
    return r


# Question 1 and its 3 rotations (answers rotate), question 2 and its rotations, question 3 alone.
ROWS = [
    row(1, "A", "cat1", ("w", "x", "y", "z")), row(1_000_001, "D", "cat1", ("x", "y", "z", "w")),
    row(2_000_001, "C", "cat1", ("y", "z", "w", "x")), row(3_000_001, "B", "cat1", ("z", "w", "x", "y")),
    row(2, "B", "cat1"), row(1_000_002, "A", "cat1"),
    row(3, "C", "cat2", ("p", "q", "r", "nan")),
]
PREDICTIONS = {
    "1": "A", "1000001": "D", "2000001": "The answer is (C).", "3000001": "w",   # all right ("w" is option B's text)
    "2": "B", "1000002": "B",                                                    # one rotation wrong
    "3": "r",                                                                    # right by option text
}


def test_circular_rule():
    r = circular_accuracy(ROWS, PREDICTIONS)
    # question 1 right in every rotation, question 2 wrong in one, question 3 right: 2 of 3
    assert r["accuracy"] == pytest.approx(200 / 3)
    assert r["questions"] == 3
    assert r["row_accuracy"] == pytest.approx(600 / 7)  # every row but 1000002 is right
    assert r["per_category"] == {"cat1": {"accuracy": 50.0, "questions": 2},
                                 "cat2": {"accuracy": 100.0, "questions": 1}}
    # without the circular rule (main rows only) all three would count
    main_only = circular_accuracy([x for x in ROWS if x["index"] < 1_000_000], PREDICTIONS)
    assert main_only["accuracy"] == 100.0


def test_unanswered_rotation_makes_the_question_wrong():
    predictions = dict(PREDICTIONS)
    del predictions["3000001"]
    r = circular_accuracy(ROWS, predictions)
    assert r["accuracy"] == pytest.approx(100 / 3)
    assert r["unanswered_rows"] == 1
    assert r["row_accuracy"] == pytest.approx(500 / 7)  # the unanswered row counts as wrong


def test_submission_table_columns_like_llava():
    header, table = submission_table(COLUMNS, ROWS[:1], {"1": "A"})
    assert header == ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    assert table == [[1, "Which?", "w", "x", "y", "z", "A", "A", "dev"]]
    _, table = submission_table(COLUMNS, ROWS[6:], {})
    assert table[0][5] is None and table[0][6] is None   # absent option D, no prediction


def write_tsv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(COLUMNS)
        writer.writerows([[r[c] for c in COLUMNS] for r in rows])


def run_cli(tmp_path, answers):
    write_tsv(tmp_path / "mmbench_dev_20230712.tsv", ROWS)
    write_jsonl(str(tmp_path / "answers" / "exp.jsonl"), answers)
    return main(["--annotation-file", str(tmp_path / "mmbench_dev_20230712.tsv"), "--result-dir",
                 str(tmp_path / "answers"), "--upload-dir", str(tmp_path / "upload"), "--experiment", "exp"])


def test_cli_without_openpyxl_writes_tsv(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)   # import openpyxl -> ImportError
    answers = [{"question_id": int(k), "round_id": 0, "prompt": "p", "text": v} for k, v in PREDICTIONS.items()]
    assert run_cli(tmp_path, answers) == 0
    out = capsys.readouterr().out
    assert "openpyxl not installed: wrote TSV" in out
    assert "circular accuracy 66.67% over 3 questions" in out
    _, rows = read_tsv(str(tmp_path / "upload" / "exp.tsv"))
    assert [r["prediction"] for r in rows][:2] == ["A", "D"]
    assert json.loads((tmp_path / "answers" / "exp.score.json").read_text())["circular"]["questions"] == 3


def test_cli_all_rounds_answers_use_round_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    answers = [{"question_id": int(k), "round_id": 0, "prompt": "p", "text": v} for k, v in PREDICTIONS.items()]
    answers.append({"question_id": 1, "round_id": 1, "prompt": "p", "text": "D"})   # rotated round: not the TSV's order
    assert run_cli(tmp_path, answers) == 0
    _, rows = read_tsv(str(tmp_path / "upload" / "exp.tsv"))
    assert rows[0]["prediction"] == "A"


def test_cli_with_openpyxl_writes_xlsx(tmp_path, capsys):
    import openpyxl  # in the test extra

    answers = [{"question_id": int(k), "prompt": "p", "text": v} for k, v in PREDICTIONS.items()]
    assert run_cli(tmp_path, answers) == 0
    sheet = openpyxl.load_workbook(tmp_path / "upload" / "exp.xlsx").active
    values = list(sheet.values)
    assert values[0][6] == "prediction" and values[1][6] == "A"


def test_xlsx_drops_control_characters_a_model_may_emit(tmp_path):
    import openpyxl

    answers = [{"question_id": int(k), "prompt": "p", "text": v} for k, v in PREDICTIONS.items()]
    answers[0]["text"] = "A\x01\x1b"
    assert run_cli(tmp_path, answers) == 0
    values = list(openpyxl.load_workbook(tmp_path / "upload" / "exp.xlsx").active.values)
    assert values[1][6] == "A"
