"""POPE: LLaVA's yes/no parsing, the metrics by hand, and pairing that does not depend on answer order."""

import json
import random

import pytest

from llava.eval.benchmarks.pope.scorer import main, parse_yes_no, pope_metrics, score_pope
from llava.eval.core.scoring_io import write_jsonl

SHORT = "\nAnswer the question using a single word or phrase."


@pytest.mark.parametrize("text, expected", [
    ("Yes, there is a dog in the image.", "yes"),
    ("No, there is not.", "no"),
    ("There is no dog.", "no"),
    ("I do not see one", "no"),
    ("no.", "no"),
    ("Yes. But not really.", "yes"),   # only the first sentence counts
    ("NO", "yes"),                     # LLaVA's word list is "No", "not", "no": case matters
    ("Not at all", "yes"),
    ("No\nthere is none", "yes"),      # split on spaces only: "No\nthere" is one word
    ("", "yes"),
])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


def test_metrics_by_hand():
    # pred/label: yes/yes TP, yes/no FP, yes/no FP, no/yes FN, no/no TN, yes/yes TP
    m = pope_metrics(["yes", "yes", "yes", "no", "no", "yes"], ["yes", "no", "no", "yes", "no", "yes"])
    assert (m["TP"], m["FP"], m["TN"], m["FN"]) == (2, 2, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))   # = 4/7
    assert m["yes_ratio"] == pytest.approx(4 / 6)


def test_metrics_without_positive_predictions_do_not_divide_by_zero():
    m = pope_metrics(["no", "no"], ["yes", "no"])
    assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == (0.0, 0.0, 0.0, 0.5)


# Label files: ids 1..4 in each category (as in POPE's repo). Question file: global ids, so only
# adversarial's ids coincide with its label ids; the others are paired on (image, question).
LABELS = {
    "adversarial": [("a.jpg", "dog", "yes"), ("a.jpg", "cat", "no"), ("b.jpg", "car", "yes"), ("b.jpg", "bus", "no")],
    "popular": [("c.jpg", "cup", "yes"), ("c.jpg", "fork", "no"), ("d.jpg", "tv", "yes"), ("d.jpg", "bed", "no")],
    "random": [("e.jpg", "kite", "yes"), ("e.jpg", "sink", "no"), ("f.jpg", "tie", "yes"), ("f.jpg", "oven", "no")],
}
ANSWER_TEXTS = {
    # adversarial: TP, FP, FN, TN -> acc .5, precision .5, recall .5, F1 .5, yes ratio .5
    "adversarial": ["Yes, there is a dog.", "Yes.", "No, there is no car.", "No."],
    # popular: all right -> acc 1, precision 1, recall 1, F1 1, yes ratio .5
    "popular": ["Yes", "No", "Yes", "There is no bed."],
    # random: always yes -> TP 2, FP 2: acc .5, precision .5, recall 1, F1 2/3, yes ratio 1
    "random": ["Yes", "Yes", "Yes", "Yes"],
}


def question_text(obj):
    return f"Is there a {obj} in the image?"


def make_data(id_offset=None):
    """(label_files, questions, answers in question order)."""
    label_files, questions, answers = {}, [], []
    next_id = 1
    for category, rows in LABELS.items():
        label_files[category] = [{"question_id": i + 1, "image": img, "text": question_text(obj), "label": label}
                                 for i, (img, obj, label) in enumerate(rows)]
        for (img, obj, _), text in zip(rows, ANSWER_TEXTS[category]):
            questions.append({"question_id": next_id, "image": img, "text": question_text(obj) + SHORT,
                              "category": category})
            answers.append({"question_id": next_id, "prompt": question_text(obj) + SHORT, "text": text})
            next_id += 1
    return label_files, questions, answers


def llava_positional(label_files, questions, answers):
    """LLaVA's rule: the i-th answer of a category goes with the i-th line of its label file."""
    cats = {q["question_id"]: q["category"] for q in questions}
    out = {}
    for category, rows in label_files.items():
        cur = [a for a in answers if cats[a["question_id"]] == category]
        out[category] = pope_metrics([parse_yes_no(a["text"]) for a in cur], [r["label"] for r in rows][:len(cur)])
    return out


EXPECTED = {
    "adversarial": dict(accuracy=0.5, precision=0.5, recall=0.5, f1=0.5, yes_ratio=0.5),
    "popular": dict(accuracy=1.0, precision=1.0, recall=1.0, f1=1.0, yes_ratio=0.5),
    "random": dict(accuracy=0.5, precision=0.5, recall=1.0, f1=2 / 3, yes_ratio=1.0),
}
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio", "TP", "FP", "TN", "FN")


def test_in_order_matches_hand_values_and_llava():
    label_files, questions, answers = make_data()
    result = score_pope(label_files, questions, answers)
    for category, expected in EXPECTED.items():
        for k, v in expected.items():
            assert result["categories"][category][k] == pytest.approx(v), (category, k)
    assert result["mean_f1"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    official = llava_positional(label_files, questions, answers)
    for category in LABELS:
        assert {k: result["categories"][category][k] for k in METRICS} == {k: official[category][k] for k in METRICS}


def test_shuffled_answers_give_the_same_numbers():
    label_files, questions, answers = make_data()
    in_order = score_pope(label_files, questions, answers)
    shuffled = answers[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != answers
    result = score_pope(label_files, questions, shuffled)
    assert result["categories"] == in_order["categories"]
    # ...while LLaVA's positional pairing would now pair answers with the wrong labels.
    official = llava_positional(label_files, questions, shuffled)
    assert any(official[c]["accuracy"] != in_order["categories"][c]["accuracy"] for c in LABELS)


def test_a_coincidental_question_id_is_not_trusted():
    # Question ids shifted by one: question id 2 is label 1's question, but label id 2 is another question
    # about the same image. The question text decides.
    label_files, questions, answers = make_data()
    for q, a in zip(questions, answers):
        q["question_id"] += 1
        a["question_id"] += 1
    assert score_pope(label_files, questions, answers)["categories"] == \
        score_pope(*make_data())["categories"]


def test_missing_answers_are_reported_not_misaligned():
    label_files, questions, answers = make_data()
    del answers[1]  # adversarial's FP answer
    adv = score_pope(label_files, questions, answers)["categories"]["adversarial"]
    assert (adv["TP"], adv["FP"], adv["TN"], adv["FN"]) == (1, 0, 1, 1)
    assert adv["missing"] == 1


def test_answer_for_unknown_question_is_an_error():
    label_files, questions, answers = make_data()
    answers.append({"question_id": 999, "text": "Yes"})
    with pytest.raises(ValueError, match="not in the question file"):
        score_pope(label_files, questions, answers)


def test_cli(tmp_path, capsys):
    label_files, questions, answers = make_data()
    coco = tmp_path / "coco"
    for category, rows in label_files.items():
        write_jsonl(str(coco / f"coco_pope_{category}.json"), rows)
    write_jsonl(str(tmp_path / "llava_pope_test.jsonl"), questions)
    write_jsonl(str(tmp_path / "answers" / "m.jsonl"), answers)
    assert main(["--annotation-dir", str(coco), "--question-file", str(tmp_path / "llava_pope_test.jsonl"),
                 "--result-file", str(tmp_path / "answers" / "m.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "adversarial F1 0.500 acc 0.500 yes 0.500 (n=4)" in out
    assert "random F1 0.667 acc 0.500 yes 1.000 (n=4)" in out
    result = json.loads((tmp_path / "answers" / "m.score.json").read_text())
    assert result["categories"]["popular"]["f1"] == 1.0


def test_cli_without_label_files(tmp_path, capsys):
    (tmp_path / "coco").mkdir()
    (tmp_path / "q.jsonl").write_text("")
    (tmp_path / "a.jsonl").write_text("")
    assert main(["--annotation-dir", str(tmp_path / "coco"), "--question-file", str(tmp_path / "q.jsonl"),
                 "--result-file", str(tmp_path / "a.jsonl")]) == 2
    assert "no coco_pope_<category>.json" in capsys.readouterr().err
