"""DocVQA: the record's plan, the worker's question reading and prompt (lmms-eval's), the official ANLS scorer
and its input checks, the RRC submission converter, the held-out sample set, and a run on the embedded default."""

import argparse
import importlib
import json
import random
import re

import pytest
from PIL import Image

from llava.data.documents import (Document, document_split, infographic_split, page_from_dict, page_qa_pairs,
                                  render_page, sample_document, sample_infographic)
from llava.eval.benchmarks import Answer, Context, Run, Say
from llava.eval.benchmarks.docvqa import BENCHMARKS
from llava.eval.benchmarks.docvqa import convert, scorer, worker
from llava.eval.benchmarks.docvqa.sample import write_docvqa
from llava.eval.core.questions import QuestionFileError
from worker_helpers import GENERATION_FLAGS

PROMPT_END = "\nAnswer the question using a single word or phrase."
(RECORD,) = BENCHMARKS


def rrc(entries, split="val"):
    return {"dataset_name": "docvqa", "dataset_split": split, "dataset_version": "1.0", "data": entries}


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def answers_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- the record ---------------------------------------------------------------------------------------


def test_plan_answers_val_then_scores_it():
    steps = RECORD.plan(Context("/data", "run1"))
    assert [type(s) for s in steps] == [Answer, Run]
    answer, score = steps
    assert answer.module == "llava.eval.benchmarks.docvqa.worker"
    assert answer.answers == "/data/docvqa/answers/run1.jsonl"
    assert answer.args == ("--question-file", "/data/docvqa/spdocvqa_qas/val_v1.0_withQT.json",
                           "--image-folder", "/data/docvqa/spdocvqa_images")
    assert score.module == "llava.eval.benchmarks.docvqa.scorer"
    assert score.args == ("--annotation-file", "/data/docvqa/spdocvqa_qas/val_v1.0_withQT.json",
                          "--result-file", "/data/docvqa/answers/run1.jsonl")
    assert RECORD.workers == ["llava.eval.benchmarks.docvqa.worker"]
    assert (RECORD.name, RECORD.metric, RECORD.folder, RECORD.lmms_task) == ("docvqa", "ANLS", "docvqa", "docvqa_val")


def test_plan_for_the_test_split_writes_the_submission_and_says_where_it_goes():
    steps = RECORD.plan(Context("/data", "run1", {"DOCVQA_SPLIT": "test"}))
    assert [type(s) for s in steps] == [Answer, Run, Say]
    assert steps[0].args[1] == "/data/docvqa/spdocvqa_qas/test_v1.0.json"
    assert steps[1].module == "llava.eval.benchmarks.docvqa.convert"
    assert steps[1].args == ("--question-file", "/data/docvqa/spdocvqa_qas/test_v1.0.json",
                             "--result-file", "/data/docvqa/answers_test/run1.jsonl",
                             "--output-file", "/data/docvqa/answers_upload/run1.json")
    assert "/data/docvqa/answers_upload/run1.json" in steps[2].text and "rrc.cvc.uab.es/?ch=17" in steps[2].text
    assert "Task 1" in steps[2].text
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        RECORD.plan(Context("/data", "run1", {"DOCVQA_SPLIT": "dev"}))


def test_score_reads_the_scorers_percentage(tmp_path):
    (tmp_path / "docvqa" / "answers").mkdir(parents=True)
    (tmp_path / "docvqa" / "answers" / "run1.score.json").write_text(json.dumps({"anls": 0.625, "score": 62.5}))
    assert RECORD.score(tmp_path, "run1") == 62.5


# -- the worker ---------------------------------------------------------------------------------------


def entry(qid, question="What is the date?", image="documents/xnbl0037_1.png", answers=("1/8/93",), **extra):
    return {"questionId": qid, "question": question, "question_types": ["form"], "image": image, "docId": 279,
            "ucsf_document_id": "xnbl0037", "ucsf_document_page_no": "1", "answers": list(answers),
            "data_split": "val", **extra}


def test_worker_prompt_ids_and_both_image_layouts(tmp_path):
    questions = write(tmp_path / "val.json", rrc([entry(337), entry(338, "Whose signature?", "documents/a_2.png")]))
    flat = tmp_path / "spdocvqa_images"  # the current download: pages without the documents/ folder
    flat.mkdir()
    rows = worker.read_rrc_questions(str(questions))
    items = [i for row in rows for i in worker.docvqa_items(row, argparse.Namespace(image_folder=str(flat)))]
    assert [i.text for i in items] == ["What is the date?" + PROMPT_END, "Whose signature?" + PROMPT_END]
    assert [i.record for i in items] == [{"question_id": 337, "prompt": items[0].text},
                                         {"question_id": 338, "prompt": items[1].text}]
    assert items[0].images[0].path == str(flat / "xnbl0037_1.png")
    (tmp_path / "val2020" / "documents").mkdir(parents=True)  # the 2020 release: val/documents/<page>.png
    (tmp_path / "val2020" / "documents" / "xnbl0037_1.png").write_bytes(b"")
    (item,) = worker.docvqa_items(rows[0], argparse.Namespace(image_folder=str(tmp_path / "val2020")))
    assert item.images[0].path == str(tmp_path / "val2020" / "documents" / "xnbl0037_1.png")


def test_worker_bad_question_files_name_the_entry(tmp_path):
    bad = write(tmp_path / "list.json", [entry(1)])
    with pytest.raises(QuestionFileError, match="list.json: expected the RRC layout"):
        worker.read_rrc_questions(str(bad))
    rows = worker.read_rrc_questions(str(write(tmp_path / "q.json", rrc([entry(1), {"questionId": 2, "image": "x"}]))))
    with pytest.raises(QuestionFileError, match=r"q\.json: data\[1\]: missing field\(s\) 'question'"):
        worker.docvqa_items(rows[1], argparse.Namespace(image_folder=""))
    (tmp_path / "broken.json").write_text('{"data": [')
    with pytest.raises(QuestionFileError, match=r"broken\.json:1: not valid JSON"):
        worker.read_rrc_questions(str(tmp_path / "broken.json"))
    with pytest.raises(QuestionFileError, match="question file not found"):
        worker.read_rrc_questions(str(tmp_path / "nowhere.json"))


@pytest.mark.parametrize("module", ["docvqa.worker", "docvqa.scorer", "docvqa.convert", "infovqa.worker",
                                    "infovqa.scorer"])
def test_help_shows_the_docstring_examples_as_written(module, capsys):
    entry_point = importlib.import_module(f"llava.eval.benchmarks.{module}")
    with pytest.raises(SystemExit) as exit_:
        entry_point.main(["--help"])
    assert exit_.value.code == 0
    shown = [line.strip() for line in capsys.readouterr().out.splitlines()]
    continued = [line.strip() for line in entry_point.__doc__.splitlines() if line.endswith("\\")]
    assert len(continued) >= 2 and all(line in shown for line in continued)


# -- the scorer ---------------------------------------------------------------------------------------

# Hand-computed with the official rule: 1.0 (case), 1 - 1/6 ("1/8/9": one edit, longer raw length 6),
# 1.0 (the second gold answer, after collapsing whitespace), 0 ("cake" is 4 edits from "dog": NL 1).
GOLD = [
    entry(1, "Which word?", answers=["CAT"], question_types=["table/list"]),
    entry(2, "What is the date?", answers=["1/8/93"], question_types=["form"]),
    entry(3, "Whose signature?", answers=["Edward R. Shannon", "Edward Shannon"],
          question_types=["form", "handwritten"]),
    entry(4, "Which word?", answers=["DOG"], question_types=["layout"]),
]
PREDICTIONS = {1: "cat", 2: "1/8/9", 3: "edward  shannon", 4: "CAKE"}


def scored(tmp_path, predictions=PREDICTIONS, *extra):
    gold = write(tmp_path / "val.json", rrc(GOLD))
    answers = answers_file(tmp_path / "run.jsonl", [{"question_id": q, "text": t} for q, t in predictions.items()])
    code = scorer.main(["--annotation-file", str(gold), "--result-file", str(answers), *extra])
    return code, answers


def test_scorer_follows_the_official_rule_and_breaks_down_by_question_type(tmp_path, capsys):
    code, _ = scored(tmp_path, PREDICTIONS, "--output-file", str(tmp_path / "per_question.json"))
    assert code == 0
    result = json.loads((tmp_path / "run.score.json").read_text())
    assert result["anls"] == pytest.approx((1 + 5 / 6 + 1 + 0) / 4)
    assert result["score"] == pytest.approx(100 * 17 / 24)
    assert (result["questions"], result["missing"], result["threshold"]) == (4, 0, 0.5)
    assert result["question_types"] == {
        "form": {"anls": pytest.approx(11 / 12), "questions": 2}, "handwritten": {"anls": 1.0, "questions": 1},
        "layout": {"anls": 0.0, "questions": 1}, "table/list": {"anls": 1.0, "questions": 1}}
    assert "DocVQA: ANLS 0.7083 (70.83%) over 4 questions" in capsys.readouterr().out
    per_question = json.loads((tmp_path / "per_question.json").read_text())
    assert per_question["2"] == {"score": pytest.approx(5 / 6), "question": "What is the date?", "gt": ["1/8/93"],
                                 "det": "1/8/9"}


def test_scorer_threshold_flag(tmp_path):
    assert scored(tmp_path, PREDICTIONS, "--anls-threshold", "0.9")[0] == 0
    assert json.loads((tmp_path / "run.score.json").read_text())["anls"] == pytest.approx(0.5)  # 5/6 is now 0


def test_scorer_refuses_a_missing_answer_unless_allowed(tmp_path, capsys):
    partial = {q: t for q, t in PREDICTIONS.items() if q != 3}
    assert scored(tmp_path, partial)[0] == 2
    assert "run.jsonl: no answer to 1 of the 4 questions (questionId 3)" in capsys.readouterr().err
    assert scored(tmp_path, partial, "--allow-missing")[0] == 0
    result = json.loads((tmp_path / "run.score.json").read_text())
    assert (result["anls"], result["missing"]) == (pytest.approx((1 + 5 / 6 + 0 + 0) / 4), 1)


@pytest.mark.parametrize("lines, message", [
    ([{"question_id": 1, "text": "cat"}, {"question_id": 99, "text": "x"}],
     r"run\.jsonl:2: an answer to question 99, which the annotation file does not have"),
    ([{"question_id": 1, "text": "cat"}, {"question_id": 1, "text": "dog"}],
     r"run\.jsonl:2: question 1 is answered again \(first on line 1\)"),
    ([{"question_id": 1, "text": "cat"}, "not json"], r"run\.jsonl:2: not valid JSON"),
    ([{"question_id": 1}], r"run\.jsonl:1: the answer lacks text"),
    ([{"question_id": 1, "text": 5}], r"run\.jsonl:1: 'text' must be a string"),
])
def test_scorer_names_the_bad_answer_line(tmp_path, capsys, lines, message):
    gold = write(tmp_path / "val.json", rrc(GOLD))
    (tmp_path / "run.jsonl").write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    assert scorer.main(["--annotation-file", str(gold), "--result-file", str(tmp_path / "run.jsonl")]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_scorer_refuses_a_test_split_and_bad_annotations(tmp_path, capsys):
    answers = answers_file(tmp_path / "run.jsonl", [{"question_id": 1, "text": "x"}])
    test = write(tmp_path / "test.json", rrc([{"questionId": 1, "question": "q", "image": "documents/a.png"}], "test"))
    assert scorer.main(["--annotation-file", str(test), "--result-file", str(answers)]) == 2
    assert "data[0]: no 'answers' (a test split?" in capsys.readouterr().err
    twice = write(tmp_path / "twice.json", rrc([entry(1), entry(1)]))
    assert scorer.main(["--annotation-file", str(twice), "--result-file", str(answers)]) == 2
    assert "data[1]: questionId 1 again (first at data[0])" in capsys.readouterr().err


# -- the converter ------------------------------------------------------------------------------------


def test_convert_writes_the_rrc_submission_in_question_order(tmp_path, capsys):
    test = write(tmp_path / "test_v1.0.json", rrc([{"questionId": q, "question": "q", "image": "documents/a.png"}
                                                  for q in (57349, 57350, 57351)], "test"))
    answers = answers_file(tmp_path / "run.jsonl", [{"question_id": 57351, "text": "Edward Shannon"},
                                                    {"question_id": 57349, "text": "1/8/93"}])
    out = tmp_path / "upload" / "run.json"
    assert convert.main(["--question-file", str(test), "--result-file", str(answers), "--output-file", str(out)]) == 0
    assert json.loads(out.read_text()) == [{"questionId": 57349, "answer": "1/8/93"},
                                           {"questionId": 57350, "answer": ""},
                                           {"questionId": 57351, "answer": "Edward Shannon"}]
    assert "1 without an answer" in capsys.readouterr().out
    answers_file(answers, [{"question_id": 1, "text": "x"}])
    assert convert.main(["--question-file", str(test), "--result-file", str(answers), "--output-file", str(out)]) == 2
    assert "an answer to question 1, which the annotation file does not have" in capsys.readouterr().err


# -- the sample set -----------------------------------------------------------------------------------

CELLS = {"top left": 0, "top middle": 1, "top right": 2, "middle left": 3, "center": 4, "middle right": 5,
         "bottom left": 6, "bottom middle": 7, "bottom right": 8}
STEPS = {"under": 3, "above": -3, "to the left of": -1, "to the right of": 1}


def expected(question: str, doc: Document) -> str:
    """The answer, read off the page's ground truth independently of the generator's question code."""
    words = {w.cell: w.text for w in doc.words}
    if m := re.fullmatch(r"What word is in the (.+) cell\?", question):
        return words[CELLS[m[1]]]
    m = re.fullmatch(r"Which word is (under|above|to the left of|to the right of) ([A-Z]+)\?", question)
    cell = next(c for c, t in words.items() if t == m[2])
    if m[1] in ("to the left of", "to the right of"):
        assert (cell + STEPS[m[1]]) // 3 == cell // 3, "left/right stays in the row"
    return words[cell + STEPS[m[1]]]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("docvqa")
    return root, write_docvqa(root, seed=7, n=21)


def test_sample_has_the_official_fields_and_right_answers(sample):
    root, summary = sample
    content = json.loads((root / "docvqa" / "spdocvqa_qas" / "val_v1.0_withQT.json").read_text())
    assert {"dataset_name", "dataset_split", "dataset_version"} <= set(content) and content["dataset_split"] == "val"
    data = content["data"]
    assert len(data) == summary.n_questions == 21
    assert len({e["questionId"] for e in data}) == 21 and all(isinstance(e["questionId"], int) for e in data)
    for e in data:
        assert set(e) == {"questionId", "question", "question_types", "image", "docId", "ucsf_document_id",
                          "ucsf_document_page_no", "answers", "data_split"}
        assert e["image"] == f"documents/{e['ucsf_document_id']}_{e['ucsf_document_page_no']}.png"
        doc = summary.scenes[f"docvqa/spdocvqa_images/{e['image'].split('/')[1]}"]
        assert e["answers"] == [expected(e["question"], doc)]  # in capitals, as drawn
        assert e["question_types"] in (["table/list"], ["table/list", "layout"])
    assert any("under" in e["question"] or " of " in e["question"] for e in data)


def test_sample_pages_are_held_out_and_drawn_as_recorded(sample):
    root, summary = sample
    assert len({d.signature() for d in summary.scenes.values()}) == len(summary.scenes) == summary.n_images
    for name, doc in summary.scenes.items():
        assert document_split(doc) == "eval"
        image = Image.open(root / name).convert("L")
        for cell in range(9):
            row, col = divmod(cell, 3)
            inner = image.crop((col * 112 + 6, row * 112 + 6, col * 112 + 106, row * 112 + 106))
            has_ink = inner.getextrema()[0] < 100
            assert has_ink == (cell in {w.cell for w in doc.words}), (name, cell)


def test_sample_is_deterministic(sample, tmp_path):
    root, _ = sample
    write_docvqa(tmp_path / "same", seed=7, n=21)
    write_docvqa(tmp_path / "other", seed=8, n=21)
    path = "docvqa/spdocvqa_qas/val_v1.0_withQT.json"
    assert (tmp_path / "same" / path).read_bytes() == (root / path).read_bytes()
    assert (tmp_path / "other" / path).read_bytes() != (root / path).read_bytes()
    for image in (root / "docvqa" / "spdocvqa_images").iterdir():
        assert (tmp_path / "same" / "docvqa" / "spdocvqa_images" / image.name).read_bytes() == image.read_bytes()


def test_sample_scores_its_answers_fully(sample, tmp_path):
    root, _ = sample
    gold = root / "docvqa" / "spdocvqa_qas" / "val_v1.0_withQT.json"
    data = json.loads(gold.read_text())["data"]
    answers = answers_file(tmp_path / "perfect.jsonl",
                           [{"question_id": e["questionId"], "text": e["answers"][0].lower()} for e in data])
    assert scorer.main(["--annotation-file", str(gold), "--result-file", str(answers)]) == 0
    assert json.loads((tmp_path / "perfect.score.json").read_text())["score"] == 100.0


# -- a run on the embedded default --------------------------------------------------------------------


def test_worker_answers_the_sample_with_the_default_model_and_the_scorer_reads_it(sample, tmp_path):
    root, _ = sample
    content = json.loads((root / "docvqa" / "spdocvqa_qas" / "val_v1.0_withQT.json").read_text())
    content["data"] = content["data"][:2]
    questions = write(tmp_path / "val.json", content)
    answers = tmp_path / "answers" / "run.jsonl"
    assert worker.main(["--question-file", str(questions), "--image-folder", str(root / "docvqa" / "spdocvqa_images"),
                        "--answers-file", str(answers), "--device", "cpu", *GENERATION_FLAGS]) == 0
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [line["question_id"] for line in lines] == [e["questionId"] for e in content["data"]]
    assert all(line["prompt"].endswith(PROMPT_END) for line in lines)
    assert scorer.main(["--annotation-file", str(questions), "--result-file", str(answers)]) == 0
    assert 0 <= json.loads((tmp_path / "answers" / "run.score.json").read_text())["score"] <= 100


# -- the page generator, as training will use it -----------------------------------------------------


def test_training_pages_come_from_the_other_split_and_questions_are_distinct():
    rng = random.Random(0)
    docs = [sample_document(rng, split="train") for _ in range(40)]
    infos = [sample_infographic(rng, split="train") for _ in range(40)]
    assert all(document_split(d) == "train" for d in docs) and all(infographic_split(i) == "train" for i in infos)
    for page in (docs[0], infos[0]):
        qas = page_qa_pairs(page, rng, k=3)
        assert len(qas) == 3 and len({q.question for q in qas}) == 3
        assert page_from_dict(json.loads(json.dumps(page.to_dict()))) == page
        assert render_page(page).size == (336, 336)
    assert {q.kind for q in page_qa_pairs(infos[1], rng, ["info_count"], k=2)} == {"info_count"}
    with pytest.raises(ValueError, match=r"unknown question types \['doc_cell'\] for Infographic pages"):
        page_qa_pairs(infos[1], rng, ["doc_cell"])
