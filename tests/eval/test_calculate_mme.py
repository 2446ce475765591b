"""MME: the official answer parsing, acc / acc+ / score by hand, totals, and the CLI."""

import json

import pytest

from llava.eval.benchmarks.mme.scorer import main, parse_pred_ans, score_mme, subtask_metrics


@pytest.mark.parametrize("pred, expected", [
    ("Yes", "yes"),
    ("no", "no"),
    ("No.", "no"),
    ("yes, and no", "yes"),         # "yes" is looked for first
    ("Not sure", "no"),             # "not " contains "no"
    ("nope", "no"),
    (" no", "no"),
    ("The answer is yes", "other"), # only the first 4 characters count
    ("I think yes", "other"),
    ("", "other"),
])
def test_parse_pred_ans(pred, expected):
    assert parse_pred_ans(pred) == expected


def lines_for(pairs):
    """[(image, [(gt, pred), (gt, pred)]), ...] -> txt lines, both questions of an image together."""
    return [(img, f"q{i}?", gt, pred) for img, qa in pairs for i, (gt, pred) in enumerate(qa)]


# img1 both right, img2 one right, img3 both wrong ("maybe" is "other"):
# acc = 3 / 6 = 0.5, acc+ = 1 / 3, score = (0.5 + 1/3) * 100 = 83.33...
EXISTENCE = lines_for([
    ("1.txt", [("Yes", "Yes"), ("No", "No")]),
    ("2.txt", [("Yes", "Yes"), ("No", "Yes")]),
    ("3.txt", [("Yes", "No"), ("No", "maybe")]),
])


def test_acc_and_acc_plus_by_hand():
    m = subtask_metrics(EXISTENCE)
    assert m["acc"] == pytest.approx(0.5)
    assert m["acc_plus"] == pytest.approx(1 / 3)
    assert m["score"] == pytest.approx(250 / 3)
    assert (m["questions"], m["images"], m["other"]) == (6, 3, 1)


def test_acc_plus_needs_both_questions_right():
    # Every image has exactly one right answer: acc 0.5 but acc+ 0.
    m = subtask_metrics(lines_for([("1.txt", [("Yes", "Yes"), ("No", "Yes")]),
                                   ("2.txt", [("Yes", "No"), ("No", "No")])]))
    assert (m["acc"], m["acc_plus"], m["score"]) == (0.5, 0.0, 50.0)


def test_questions_are_grouped_by_image_not_by_line_position():
    interleaved = [EXISTENCE[0], EXISTENCE[2], EXISTENCE[1], EXISTENCE[3], EXISTENCE[4], EXISTENCE[5]]
    assert subtask_metrics(interleaved) == subtask_metrics(EXISTENCE)


def test_an_image_without_two_questions_is_an_error():
    with pytest.raises(ValueError, match="two questions per image"):
        subtask_metrics(EXISTENCE[:5])


def test_totals_per_eval_type():
    perfect = lines_for([("1.txt", [("Yes", "yes"), ("No", "no")])])            # 200
    half = lines_for([("1.txt", [("Yes", "yes"), ("No", "no")]), ("2.txt", [("Yes", "no"), ("No", "yes")])])  # 100
    result = score_mme({"existence": EXISTENCE, "count": perfect, "code_reasoning": half, "unknown_task": perfect})
    assert result["perception"]["total"] == pytest.approx(250 / 3 + 200)
    assert result["cognition"]["total"] == pytest.approx(100)
    assert "OCR" in result["perception"]["absent"] and "count" not in result["perception"]["absent"]
    assert result["ignored"] == ["unknown_task"]


def test_cli(tmp_path, capsys):
    results_dir = tmp_path / "answers" / "exp"
    results_dir.mkdir(parents=True)
    (results_dir / "existence.txt").write_text("".join("\t".join(line) + "\n" for line in EXISTENCE))
    assert main(["--results_dir", str(results_dir)]) == 0
    assert "MME (acc + acc+ per subtask, summed): perception 83.33 / 200 (1 of 10 subtasks: existence), cognition: no subtask (0 of 4)" in capsys.readouterr().out
    result = json.loads((results_dir / "mme_score.json").read_text())
    assert result["perception"]["subtasks"]["existence"]["acc_plus"] == pytest.approx(1 / 3)


def test_cli_malformed_line(tmp_path, capsys):
    (tmp_path / "count.txt").write_text("1.txt\tq?\tYes\n")
    assert main(["--results_dir", str(tmp_path)]) == 2
    assert "count.txt:1: expected 4 tab-separated fields" in capsys.readouterr().err
