"""Q-Bench A1: a response names the correct candidate (letter or text), accuracy per type and concern,
the submission file, and the test split (no public answers)."""

import json

import pytest

from llava.eval.benchmarks.qbench.scorer import main, predicted_candidate, score_qbench
from llava.eval.core.scoring_io import read_jsonl, write_jsonl

YES_NO = ["Yes", "No"]
WHAT = ["red", "green", "blue", "yellow"]


@pytest.mark.parametrize("response, candidates, picked", [
    ("B", YES_NO, 1),
    ("B. No", YES_NO, 1),
    ("No", YES_NO, 1),                 # the one candidate whose text occurs in the response
    ("The answer is (C).", WHAT, 2),
    ("It is blue.", WHAT, 2),
    ("I cannot tell", WHAT, None),
    ("D", YES_NO, None),               # a letter past the last candidate
    ("bottom left", ["left", "bottom left", "top"], 1),   # the whole response is one candidate
    ("Bottom left.", ["left", "bottom left", "top"], 1),
    ("at the bottom left", ["left", "bottom left", "top"], None),  # two candidates inside: MMBench's step fails
])
def test_response_to_candidate(response, candidates, picked):
    assert predicted_candidate(response, candidates) == picked


ENTRIES = [
    {"img_path": "0.jpg", "question": "Is it blurry?", "candidates": YES_NO, "correct_ans": "No", "type": 0,
     "concern": 0},
    {"img_path": "1.jpg", "question": "How bright is it?", "candidates": ["dark", "normal", "bright"],
     "correct_ans": "bright", "type": 1, "concern": 2},
    {"img_path": "2.jpg", "question": "What colour dominates?", "candidates": WHAT, "correct_ans": "blue", "type": 2,
     "concern": 2},
    {"img_path": "3.jpg", "question": "Is it noisy?", "candidates": YES_NO, "correct_ans": "Yes", "type": 0,
     "concern": 1},
]
ANSWERS = [
    {"question_id": 0, "text": "B"},           # right
    {"question_id": 1, "text": "C. bright"},   # right
    {"question_id": 2, "text": "hmm"},         # unparsed: wrong
    # 3: unanswered, wrong
]


def test_accuracy_by_hand():
    r = score_qbench(ENTRIES, ANSWERS)
    assert r["accuracy"] == pytest.approx(50.0) and r["questions"] == 4
    assert r["per_type"] == {"yes-or-no": {"accuracy": 50.0, "correct": 1, "questions": 2},
                             "how": {"accuracy": 100.0, "correct": 1, "questions": 1},
                             "what": {"accuracy": 0.0, "correct": 0, "questions": 1}}
    assert r["per_concern"]["in-context distortion"] == {"accuracy": 50.0, "correct": 1, "questions": 2}
    assert r["per_concern"]["others"]["correct"] == 0
    assert (r["missing"], r["unparsed"]) == (1, 1)


def test_cli_scores_dev_and_writes_llavas_submission(tmp_path, capsys):
    questions, answers, submission = tmp_path / "llvisionqa_dev.json", tmp_path / "a.jsonl", tmp_path / "sub.jsonl"
    questions.write_text(json.dumps(ENTRIES))
    write_jsonl(str(answers), ANSWERS)
    assert main(["--questions-file", str(questions), "--result-file", str(answers),
                 "--submission-file", str(submission)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Q-Bench: accuracy 50.00% over 4 questions (yes-or-no 50.00%, how 100.00%, what 0.00%, "
                          "distortion 100.00%, others 0.00%, in-context distortion 50.00%); 1 missing, 1 unparsed")
    assert read_jsonl(str(submission)) == [{**ENTRIES[i], "response": ANSWERS[i]["text"]} for i in range(3)]
    assert json.loads((tmp_path / "a.score.json").read_text())["accuracy"] == pytest.approx(50.0)


def test_test_split_without_answers_only_writes_the_submission(tmp_path, capsys):
    questions, answers, submission = tmp_path / "llvisionqa_test.json", tmp_path / "a.jsonl", tmp_path / "sub.jsonl"
    questions.write_text(json.dumps([{k: v for k, v in e.items() if k != "correct_ans"} for e in ENTRIES]))
    write_jsonl(str(answers), ANSWERS)
    assert main(["--questions-file", str(questions), "--result-file", str(answers),
                 "--submission-file", str(submission)]) == 0
    assert "3 of 4 questions answered, written to" in (out := capsys.readouterr().out)
    assert "email the file to haoning001@e.ntu.edu.sg" in out
    assert len(read_jsonl(str(submission))) == 3 and not (tmp_path / "a.score.json").exists()


def test_correct_answer_that_is_not_a_candidate_is_an_error(tmp_path, capsys):
    questions, answers = tmp_path / "q.json", tmp_path / "a.jsonl"
    questions.write_text(json.dumps([{**ENTRIES[0], "correct_ans": "Maybe"}]))
    write_jsonl(str(answers), [])
    assert main(["--questions-file", str(questions), "--result-file", str(answers)]) == 2
    assert "entry #0: correct_ans 'Maybe' is not a candidate" in capsys.readouterr().err
