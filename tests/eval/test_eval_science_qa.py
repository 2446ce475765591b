"""ScienceQA: LLaVA's option-letter parsing and ScienceQA's subset accuracies, by hand."""

import json

import pytest

from llava.eval.benchmarks.scienceqa.scorer import main, parse_option_letter, pred_index, score_science_qa
from llava.eval.core.scoring_io import write_jsonl


@pytest.mark.parametrize("text, expected", [
    ("B", "B"),
    ("B. a cat", "B"),
    ("The answer is C.", "C"),
    ("Because of X. The answer is D, clearly", "D"),   # any character after the letter
    ("The answer is C", "FAILED"),                     # ...but there must be one
    ("The answer is A. The answer is B.", "FAILED"),   # two matches
    (" B", "FAILED"),                                  # no stripping
    ("b", "FAILED"),                                   # no lower case
    ("B.", "FAILED"),                                  # "X. " needs the space
    ("Bx", "FAILED"),
])
def test_parse_option_letter(text, expected):
    assert parse_option_letter(text) == expected


def test_letter_past_the_last_choice_is_wrong():
    assert pred_index("C", 3) == 2
    assert pred_index("D", 3) == -1
    assert pred_index("FAILED", 5) == -1


def prob(subject, hint, image, grade, n_choices, answer, split="test"):
    return {"subject": subject, "hint": hint, "image": image, "grade": grade, "choices": ["x"] * n_choices,
            "answer": answer, "split": split}


PROBLEMS = {
    "1": prob("natural science", "", "image.png", "grade2", 2, 0),
    "2": prob("social science", "Some text", None, "grade8", 3, 2),
    "3": prob("language science", "", None, "grade5", 2, 1),
    "4": prob("natural science", "ctx", "image.png", "grade10", 4, 3),
    "5": prob("natural science", "", None, "grade12", 2, 0),
    "6": prob("social science", "", "image.png", "grade1", 2, 1),
    "7": prob("natural science", "", None, "grade3", 2, 0, split="train"),
}
SPLITS = {"test": ["1", "2", "3", "4", "5", "6"], "train": ["7"]}
ANSWERS = [
    {"question_id": "1", "prompt": "<image>\nQ", "text": "A"},                 # right
    {"question_id": "2", "prompt": "Q", "text": "The answer is C."},           # right
    {"question_id": "3", "prompt": "Q", "text": "C"},                          # C past 2 choices: wrong
    {"question_id": "4", "prompt": "<image>\nQ", "text": "D. the fourth"},     # right
    # "5": no answer -> FAILED, wrong
    {"question_id": "6", "prompt": "<image>\nQ", "text": "The answer is B"},   # no char after B: wrong
    {"question_id": "7", "prompt": "Q", "text": "A"},                          # train split: ignored
]


def test_subset_accuracy_by_hand():
    scored = score_science_qa(PROBLEMS, SPLITS["test"], ANSWERS)
    r = scored["result"]
    assert (r["correct"], r["questions"], r["missing"]) == (3, 6, 1)
    assert r["accuracy"] == pytest.approx(50.0)
    expected = {
        "NAT": (2, 3),    # 1 right, 4 right, 5 wrong
        "SOC": (1, 2),    # 2 right, 6 wrong
        "LAN": (0, 1),    # 3 wrong
        "TXT": (2, 2),    # hint: 2, 4
        "IMG": (2, 3),    # image: 1, 4 right, 6 wrong
        "NO": (0, 2),     # neither: 3, 5
        "G1-6": (1, 3),   # grades 2, 5, 1
        "G7-12": (2, 3),  # grades 8, 10, 12
    }
    for name, (right, n) in expected.items():
        assert r["subsets"][name] == {"accuracy": pytest.approx(100 * right / n), "questions": n}, name
    assert r["llava_img_accuracy"] == pytest.approx(200 / 3)    # prompts with <image>: 1, 4, 6
    assert scored["sqa_results"]["results"] == {"1": 0, "2": 2, "3": -1, "4": 3, "5": -1, "6": -1}
    assert [a["parsed_ans"] for a in scored["analysis"]["incorrect"]] == ["C", "FAILED", "FAILED"]


def test_cli_writes_llava_files_and_scores(tmp_path, capsys):
    (tmp_path / "problems.json").write_text(json.dumps(PROBLEMS))
    (tmp_path / "pid_splits.json").write_text(json.dumps(SPLITS))
    answers = tmp_path / "answers" / "m.jsonl"
    write_jsonl(str(answers), ANSWERS)
    out_file, out_result = tmp_path / "answers" / "m_output.jsonl", tmp_path / "answers" / "m_result.json"
    assert main(["--base-dir", str(tmp_path), "--result-file", str(answers), "--output-file", str(out_file),
                 "--output-result", str(out_result)]) == 0
    assert "ScienceQA: accuracy 50.00% (3/6)" in capsys.readouterr().out
    assert len(json.loads(out_file.read_text())["correct"]) == 3
    sqa = json.loads(out_result.read_text())
    assert (sqa["acc"], sqa["correct"], sqa["count"]) == (50.0, 3, 6)
    assert json.loads((tmp_path / "answers" / "m.score.json").read_text())["subsets"]["LAN"]["accuracy"] == 0.0


def test_cli_unknown_split(tmp_path, capsys):
    (tmp_path / "problems.json").write_text(json.dumps(PROBLEMS))
    (tmp_path / "pid_splits.json").write_text(json.dumps(SPLITS))
    (tmp_path / "a.jsonl").write_text("")
    assert main(["--base-dir", str(tmp_path), "--result-file", str(tmp_path / "a.jsonl"), "--split", "val"]) == 2
    assert "no split 'val'" in capsys.readouterr().err
