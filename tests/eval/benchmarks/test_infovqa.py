"""InfographicVQA: the record's plan, the worker (image_local_name, lmms-eval's prompt), the ANLS scorer's
breakdown by the official question types, the held-out sample set, and a run on the embedded default."""

import argparse
import json
import re
from collections import Counter

import pytest
from PIL import Image

from llava.data.documents import Infographic, infographic_split
from llava.data.scenes import COLORS
from llava.eval.benchmarks import Answer, Context, Run, Say
from llava.eval.benchmarks.docvqa.worker import read_rrc_questions
from llava.eval.benchmarks.infovqa import BENCHMARKS
from llava.eval.benchmarks.infovqa import scorer, worker
from llava.eval.benchmarks.infovqa.sample import write_infovqa
from worker_helpers import GENERATION_FLAGS

PROMPT_END = "\nAnswer the question using a single word or phrase."
QUESTIONS = "infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json"
(RECORD,) = BENCHMARKS


def rrc(entries, split="val"):
    return {"dataset_name": "infographicVQA", "dataset_version": "1.0", "dataset_split": split, "data": entries}


def entry(qid, answers, answer_type, evidence, operation, question="q?", image="37313.jpeg"):
    return {"questionId": qid, "question": question, "image_local_name": image, "image_url": "https://x/y.png",
            "ocr_output_file": image.replace(".jpeg", ".json"), "answers": answers, "data_split": "val",
            "answer_type": answer_type, "evidence": evidence, "operation/reasoning": operation}


def test_plan():
    answer, score = RECORD.plan(Context("/data", "run1"))
    val = "/data/infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json"
    assert (type(answer), type(score)) == (Answer, Run)
    assert answer.module == "llava.eval.benchmarks.infovqa.worker"
    assert answer.answers == "/data/infovqa/answers/run1.jsonl"
    assert answer.args == ("--question-file", val, "--image-folder", "/data/infovqa/infographicsvqa_images")
    assert score.module == "llava.eval.benchmarks.infovqa.scorer"
    assert score.args == ("--annotation-file", val, "--result-file", "/data/infovqa/answers/run1.jsonl")
    assert (RECORD.name, RECORD.metric, RECORD.folder) == ("infovqa", "ANLS", "infovqa")
    assert RECORD.lmms_task == "infovqa_val"
    test = RECORD.plan(Context("/data", "run1", {"INFOVQA_SPLIT": "test"}))
    assert [type(s) for s in test] == [Answer, Run, Say]
    assert test[0].args[1] == "/data/infovqa/infographicsvqa_qas/infographicsVQA_test_v1.0.json"
    assert test[1].module == "llava.eval.benchmarks.docvqa.convert"
    assert "/data/infovqa/answers_upload/run1.json" in test[2].text and "Task 3" in test[2].text


def test_worker_prompt_and_image(tmp_path):
    path = tmp_path / "val.json"
    path.write_text(json.dumps(rrc([entry(98313, ["pinterest"], [], [], [], "Which platform?")])))
    (row,) = read_rrc_questions(str(path))
    (item,) = worker.infovqa_items(row, argparse.Namespace(image_folder=str(tmp_path / "imgs")))
    assert item.text == "Which platform?" + PROMPT_END
    assert item.record == {"question_id": 98313, "prompt": item.text}
    assert item.images[0].path == str(tmp_path / "imgs" / "37313.jpeg")


def test_scorer_breaks_down_by_answer_type_evidence_and_operation(tmp_path, capsys):
    gold = tmp_path / "val.json"
    gold.write_text(json.dumps(rrc([
        entry(1, ["CAT"], ["image span"], ["textual", "figure"], []),
        entry(2, ["3"], ["non span"], ["figure"], ["counting"]),
        entry(3, ["red, blue"], ["multiple spans"], ["table/list"], ["comparison"]),
    ])))
    answers = tmp_path / "run.jsonl"
    # cat: 1; 4 for 3: 0; "red,blue": one edit over the longer raw length 9: 8/9.
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n"
                               for q, t in ((1, "cat"), (2, "4"), (3, "red,blue"))))
    assert scorer.main(["--annotation-file", str(gold), "--result-file", str(answers)]) == 0
    result = json.loads((tmp_path / "run.score.json").read_text())
    assert result["benchmark"] == "infovqa"
    assert result["anls"] == pytest.approx(17 / 27) and result["score"] == pytest.approx(100 * 17 / 27)
    assert {k: v["anls"] for k, v in result["answer_types"].items()} == \
        {"image span": 1.0, "non span": 0.0, "multiple spans": pytest.approx(8 / 9)}
    assert {k: (v["anls"], v["questions"]) for k, v in result["evidence_types"].items()} == \
        {"textual": (1.0, 1), "figure": (0.5, 2), "table/list": (pytest.approx(8 / 9), 1)}
    assert {k: v["anls"] for k, v in result["operation_types"].items()} == \
        {"counting": 0.0, "comparison": pytest.approx(8 / 9)}
    assert "InfographicVQA: ANLS 0.6296" in capsys.readouterr().out


# -- the sample set -----------------------------------------------------------------------------------


def expected(question: str, info: Infographic) -> str:
    """The answer, read off the image's ground truth independently of the generator's question code."""
    shape_at = {s.cell: s for s in info.shapes}
    word_at = {w.cell: w.text for w in info.labels}
    if m := re.fullmatch(r"What word is next to the (\w+) (\w+)\?", question):
        (shape,) = [s for s in info.shapes if (s.color, s.kind) == (m[1], m[2])]  # one such shape on the page
        return word_at[shape.cell + 1]
    if m := re.fullmatch(r"What (color|shape) is (?:the shape )?next to ([A-Z]+)\?", question):
        (cell,) = [c for c, t in word_at.items() if t == m[2]]
        shape = shape_at[cell - 1]
        return shape.color if m[1] == "color" else shape.kind
    if m := re.fullmatch(r"How many (\w+)s are there\?", question):
        return str(sum(s.kind == m[1] for s in info.shapes) if m[1] != "shape" else len(info.shapes))
    m = re.fullmatch(r"How many (\w+) shapes are there\?", question)
    return str(sum(s.color == m[1] for s in info.shapes))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("infovqa")
    return root, write_infovqa(root, seed=7, n=24)


def test_sample_has_the_official_fields_and_right_answers(sample):
    root, summary = sample
    content = json.loads((root / QUESTIONS).read_text())
    assert content["dataset_split"] == "val" and len(content["data"]) == summary.n_questions == 24
    kinds = Counter()
    for e in content["data"]:
        assert set(e) == {"questionId", "question", "image_local_name", "image_url", "ocr_output_file", "answers",
                          "data_split", "answer_type", "evidence", "operation/reasoning"}
        assert all(isinstance(e[k], list) for k in ("answer_type", "evidence", "operation/reasoning"))
        info = summary.scenes[f"infovqa/infographicsvqa_images/{e['image_local_name']}"]
        assert e["answers"] == [expected(e["question"], info)]
        kinds[e["question"].split()[1]] += 1
        assert ("counting" in e["operation/reasoning"]) == e["question"].startswith("How many")
    assert kinds["word"] == kinds["many"] == 8 and kinds["color"] + kinds["shape"] == 8
    assert len({e["questionId"] for e in content["data"]}) == 24


def test_sample_images_are_held_out_unambiguous_and_drawn_as_recorded(sample):
    root, summary = sample
    assert len({i.signature() for i in summary.scenes.values()}) == len(summary.scenes) == summary.n_images == 8
    for name, info in summary.scenes.items():
        assert infographic_split(info) == "eval"
        cells = {s.cell for s in info.shapes}
        for word in info.labels:
            assert word.cell - 1 in cells and word.cell % 3 != 0  # its shape is on its left, in its row
            assert word.cell % 3 == 2 or word.cell + 1 not in cells  # nothing else is next to it
        image = Image.open(root / name).convert("RGB")
        for s in info.shapes:  # JPEG: close, not exact
            assert max(abs(a - b) for a, b in zip(image.getpixel((s.cx, s.cy)), COLORS[s.color])) <= 12, name
        gray = image.convert("L")
        for word in info.labels:
            row, col = divmod(word.cell, 3)
            assert gray.crop((col * 112 + 6, row * 112 + 6, col * 112 + 106, row * 112 + 106)).getextrema()[0] < 100


def test_sample_is_deterministic(sample, tmp_path):
    root, _ = sample
    write_infovqa(tmp_path / "same", seed=7, n=24)
    write_infovqa(tmp_path / "other", seed=8, n=24)
    assert (tmp_path / "same" / QUESTIONS).read_bytes() == (root / QUESTIONS).read_bytes()
    assert (tmp_path / "other" / QUESTIONS).read_bytes() != (root / QUESTIONS).read_bytes()
    for image in (root / "infovqa" / "infographicsvqa_images").iterdir():
        same = tmp_path / "same" / "infovqa" / "infographicsvqa_images" / image.name
        assert same.read_bytes() == image.read_bytes()


def test_worker_answers_the_sample_with_the_default_model_and_the_scorer_reads_it(sample, tmp_path):
    root, _ = sample
    content = json.loads((root / QUESTIONS).read_text())
    content["data"] = content["data"][:2]
    questions = tmp_path / "val.json"
    questions.write_text(json.dumps(content))
    answers = tmp_path / "run.jsonl"
    assert worker.main(["--question-file", str(questions), "--image-folder",
                        str(root / "infovqa" / "infographicsvqa_images"), "--answers-file", str(answers),
                        "--device", "cpu", *GENERATION_FLAGS]) == 0
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [line["question_id"] for line in lines] == [e["questionId"] for e in content["data"]]
    assert scorer.main(["--annotation-file", str(questions), "--result-file", str(answers)]) == 0
    assert 0 <= json.loads((tmp_path / "run.score.json").read_text())["score"] <= 100
