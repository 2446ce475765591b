"""GQA: LLaVA's prediction conversion and the official accuracy (overall, binary/open, per type)."""

import json

import pytest

from llava.eval.benchmarks.gqa import convert as convert_gqa_for_eval
from llava.eval.benchmarks.gqa.scorer import main, score_gqa
from llava.eval.core.scoring_io import write_jsonl


def q(answer, structural, semantic, balanced=True):
    return {"answer": answer, "types": {"structural": structural, "semantic": semantic, "detailed": "x"},
            "isBalanced": balanced, "question": "?"}


QUESTIONS = {
    "1": q("yes", "verify", "attr"),
    "2": q("table", "query", "obj"),
    "3": q("no", "compare", "rel"),
    "4": q("red", "query", "attr"),                 # no prediction
    "5": q("left", "query", "rel", balanced=False),  # not in the balanced tier: ignored
}
PREDICTIONS = {"1": "yes", "2": "chair", "3": "no", "5": "right"}


def test_accuracy_by_hand():
    r = score_gqa(QUESTIONS, PREDICTIONS)
    # answered balanced questions: 1 right, 2 wrong, 3 right -> 2/3
    assert r["accuracy"] == pytest.approx(200 / 3)
    assert (r["questions"], r["missing"], r["balanced_questions"]) == (3, 1, 4)
    assert r["binary"] == {"accuracy": 100.0, "questions": 2}     # verify + compare
    assert r["open"] == {"accuracy": 0.0, "questions": 1}         # query
    assert r["per_structural_type"]["verify"]["accuracy"] == 100.0
    assert r["per_semantic_type"] == {"attr": {"accuracy": 100.0, "questions": 1},
                                      "obj": {"accuracy": 0.0, "questions": 1},
                                      "rel": {"accuracy": 100.0, "questions": 1}}


def test_exact_match_only():
    assert score_gqa({"1": q("yes", "verify", "attr")}, {"1": "Yes"})["accuracy"] == 0.0


def test_convert_rules():
    answers = [{"question_id": 201, "text": "Yes."}, {"question_id": "202", "text": "LEFT.."},
               {"question_id": "203", "text": "a dog. "}]
    assert convert_gqa_for_eval.convert(answers) == [
        {"questionId": "201", "prediction": "yes"},
        {"questionId": "202", "prediction": "left"},
        {"questionId": "203", "prediction": "a dog. "},   # only trailing periods go, as in LLaVA
    ]


def test_convert_then_eval_cli(tmp_path, capsys):
    data = tmp_path / "gqa" / "data"
    data.mkdir(parents=True)
    (data / "testdev_balanced_questions.json").write_text(json.dumps(QUESTIONS))
    write_jsonl(str(tmp_path / "merge.jsonl"),
                [{"question_id": k, "prompt": "?", "text": v.capitalize() + "."} for k, v in PREDICTIONS.items()])
    dst = data / "testdev_balanced_predictions.json"
    assert convert_gqa_for_eval.main(["--src", str(tmp_path / "merge.jsonl"), "--dst", str(dst)]) == 0
    assert main(["--data-dir", str(data), "--tier", "testdev_balanced"]) == 0
    out = capsys.readouterr().out
    assert "GQA: accuracy 66.67% over 3 questions (binary 100.00%, open 0.00%)" in out
    assert "1 balanced questions have no prediction" in out
    assert json.loads((data / "testdev_balanced_predictions.score.json").read_text())["missing"] == 1


def test_no_prediction_at_all_is_an_error(tmp_path, capsys):
    (tmp_path / "testdev_balanced_questions.json").write_text(json.dumps(QUESTIONS))
    (tmp_path / "testdev_balanced_predictions.json").write_text("[]")
    assert main(["--data-dir", str(tmp_path)]) == 2
    assert "none of the 4 balanced questions has a prediction" in capsys.readouterr().err
