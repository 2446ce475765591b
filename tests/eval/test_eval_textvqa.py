"""TextVQA scoring: LLaVA's prompt parsing, pairing by (image id, question) or question id, the CLI."""

import json

import pytest

from llava.eval.benchmarks.textvqa.scorer import main, pair_answers, prompt_processor, score_textvqa
from llava.eval.core.scoring_io import write_jsonl

SHORT = "Answer the question using a single word or phrase."

ANNOTATIONS = [
    {"question_id": 101, "image_id": "img1", "question": "What brand is this?", "answers": ["nike"] * 10},
    {"question_id": 102, "image_id": "img1", "question": "What color is the sign?", "answers": ["red"] + ["blue"] * 9},
    {"question_id": 103, "image_id": "img2", "question": "How many cups?", "answers": ["2", "2"] + ["3"] * 8},
    {"question_id": 104, "image_id": "img3", "question": "Is it open?", "answers": ["yes"] * 10},
]


def test_prompt_processor_rules():
    assert prompt_processor(f"What brand is this?\nReference OCR token: NIKE, JUST\n{SHORT}") == "what brand is this?"
    assert prompt_processor(f"Reference OCR token: NIKE\nWhat Brand?\n{SHORT}") == "what brand?"
    assert prompt_processor(f"How many cups?\n{SHORT}") == "how many cups?"
    assert prompt_processor("OCR tokens: a b. Question: What is it? Short answer:") == "what is it?"
    assert prompt_processor("one line only") is None
    assert prompt_processor("four\nlines\nwithout\nocr") is None


def test_pairs_like_llava_on_image_id_and_question():
    # LLaVA's question file puts the image id in question_id; the question text tells the two img1 apart.
    answers = [
        {"question_id": "img1", "prompt": f"What color is the sign?\nReference OCR token: STOP\n{SHORT}",
         "text": "RED"},
        {"question_id": "img1", "prompt": f"What brand is this?\n{SHORT}", "text": "Nike."},
    ]
    pred_list, counts = pair_answers(ANNOTATIONS, answers)
    assert [p["gt_answers"] for p in pred_list] == [ANNOTATIONS[0]["answers"], ANNOTATIONS[1]["answers"]]
    assert [p["pred_answer"] for p in pred_list] == ["Nike.", "RED"]
    assert counts == {"matched": 2, "unmatched": 0, "duplicates": 0, "missing": 2, "annotated": 4}


def test_accuracy_over_answered_questions_with_question_id_fallback():
    answers = [
        {"question_id": "img1", "prompt": f"What brand is this?\n{SHORT}", "text": "Nike."},       # 1.0
        {"question_id": "img1", "prompt": f"What color is the sign?\n{SHORT}", "text": "RED"},     # 0.3
        {"question_id": 103, "prompt": "a prompt LLaVA could not parse", "text": "two"},           # 0.6 via question_id
        {"question_id": "nowhere", "prompt": f"What?\n{SHORT}", "text": "x"},                     # unmatched
    ]
    result = score_textvqa(ANNOTATIONS, answers)
    assert result["accuracy"] == pytest.approx(100 * (1.0 + 0.3 + 0.6) / 3)
    assert (result["samples"], result["missing"], result["unmatched"]) == (3, 1, 1)


def test_no_match_is_an_error():
    with pytest.raises(ValueError, match="none of the 1 answers"):
        score_textvqa(ANNOTATIONS, [{"question_id": "zzz", "prompt": "q\nA", "text": "x"}])


def test_cli_writes_result_json_next_to_answers(tmp_path, capsys):
    ann = tmp_path / "TextVQA_0.5.1_val.json"
    ann.write_text(json.dumps({"data": ANNOTATIONS}))
    answers = tmp_path / "answers" / "model.jsonl"
    write_jsonl(str(answers), [
        {"question_id": "img2", "prompt": f"How many cups?\n{SHORT}", "text": "Two", "answer_id": "x",
         "model_id": "m", "metadata": {}},
    ])
    assert main(["--annotation-file", str(ann), "--result-file", str(answers)]) == 0
    out = capsys.readouterr().out
    assert "accuracy 60.00% over 1 answered questions (3 missing)" in out
    result = json.loads((tmp_path / "answers" / "model.score.json").read_text())
    assert result["accuracy"] == pytest.approx(60.0)
    assert result["missing"] == 3


def test_cli_bad_annotation_file(tmp_path, capsys):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([1, 2]))
    answers = tmp_path / "a.jsonl"
    answers.write_text("")
    assert main(["--annotation-file", str(ann), "--result-file", str(answers)]) == 2
    assert "TextVQA's {'data': [...]} layout" in capsys.readouterr().err
