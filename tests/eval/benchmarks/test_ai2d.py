"""AI2D: lmms-eval's letter rule on crafted answers, the release's files (test split, abcLabel images), clear
errors, the diagrams the sample draws (read back from the pixels), and the record's commands end to end."""

import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from llava.constants import DEFAULT_MODEL_PATH
from llava.data.diagrams import LABEL_Y, Diagram, Node, arrow_ends, ask_diagram, render_diagram, sample_diagram
from llava.data.scenes import CELL, COLORS, WORD_INK, WORDS, Scene, Shape, Word, scene_split
from llava.data.shapes import render
from llava.eval.benchmarks import Answer, Context, Run, get
from llava.eval.benchmarks.ai2d import worker
from llava.eval.benchmarks.ai2d.release import Ai2dFileError, read_split, read_test_ids
from llava.eval.benchmarks.ai2d.sample import NON_TEST_IMAGES, write_ai2d
from llava.eval.benchmarks.ai2d.scorer import extract, is_right, main as scorer_main, score_ai2d
from llava.eval.core.common import build_parser

GENERATION = ["--device", "cpu", "--temperature", "0", "--conv-mode", "vicuna_v1", "--max_new_tokens", "3"]
POST = "Answer with the option's letter from the given choices directly."


# ------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("response, correct, right", [
    ("A", 0, True),
    ("a", 0, True),                     # ignore_case
    ("A.", 0, True),                    # the filter's "X." letter
    ("  C. purple star", 2, True),      # ... after blanks, with the option's text after it
    ("b.", 1, True),                    # the filter is case-sensitive, but "b." -> "b" after punctuation goes
    ("(B)", 1, True),                   # no "X." start: the whole response, punctuation removed
    ("B)", 1, True),
    ("**D**", 3, True),
    ("D\n", 3, True),                   # stripped
    ("The answer is C", 2, False),      # exact match of the whole response: no letter search
    ("C: cat", 2, False),
    ("A cat", 0, False),
    ("red circle", 0, False),           # the option's text is not its letter
    ("A. B", 1, False),                 # the leading "A." decides
    ("B", 0, False),
    ("", 0, False),
    ("A, B", 0, False),
])
def test_lmms_eval_rule(response, correct, right):
    assert is_right(response, correct) is right


def test_extract_keeps_what_lmms_eval_compares():
    assert extract(" B. blue square") == "b"
    assert extract("The answer is (C).") == "the answer is c"


# --------------------------------------------------------------------------------------- the release


def write_release(root: Path, questions_by_image: dict, test_ids, header: str = "") -> Path:
    """AI2D's files under root/ai2d: question files and a test ids csv; returns the csv."""
    base = root / "ai2d"
    (base / "questions").mkdir(parents=True, exist_ok=True)
    for image_id, questions in questions_by_image.items():
        name = f"{image_id}.png"
        (base / "questions" / f"{name}.json").write_text(json.dumps({"imageName": name, "questions": questions}))
    csv = base / "ai2d_test_ids.csv"
    csv.write_text(header + "".join(f"{i}\n" for i in test_ids))
    return csv


def q(qid, options=("cat", "dog", "sun", "moon"), correct=0, abc=False):
    return {"abcLabel": abc, "answerTexts": list(options), "correctAnswer": correct, "questionId": qid}


RELEASE = {
    "10": {"What is the label of the star?": q("10.png-0", correct=2),
           "What is A in the diagram?": q("10.png-1", ("ears", "nose", "mouth", "face"), 3, abc=True)},
    "11": {"Which shape is labelled cat?": q("11.png-0", ("red circle", "blue square"), 1)},
    "12": {"Not in the test split?": q("12.png-0")},
}


def test_split_reading_keeps_the_test_images_in_file_order(tmp_path):
    csv = write_release(tmp_path, RELEASE, ["11", "10"], header="id\n")
    questions = read_split(str(csv))
    assert [x.question_id for x in questions] == ["11.png-0", "10.png-0", "10.png-1"]
    assert questions[2].options == ("ears", "nose", "mouth", "face") and questions[2].correct == 3
    assert questions[2].abc_label and questions[2].image_name == "10.png"
    assert [i for _, i in read_test_ids(str(csv))] == ["11", "10"]


def test_worker_prompt_and_images_are_lmms_evals(tmp_path):
    csv = write_release(tmp_path, RELEASE, ["10", "11"])
    args = build_parser(worker.TASK).parse_args(["--question-file", str(csv), "--image-folder", "IMG"])
    items = [item for row in worker.read_ai2d(str(csv)) for item in worker.ai2d_items(row, args)]
    assert [i.record["question_id"] for i in items] == ["10.png-0", "10.png-1", "11.png-0"]
    assert items[0].text == f"What is the label of the star?\nA. cat\nB. dog\nC. sun\nD. moon\n{POST}"
    assert items[2].text == f"Which shape is labelled cat?\nA. red circle\nB. blue square\n{POST}"
    assert items[0].record["prompt"] == items[0].text
    assert [i.images[0].path for i in items] == ["IMG/images/10.png", "IMG/abc_images/10.png", "IMG/images/11.png"]
    elsewhere = build_parser(worker.TASK).parse_args(["--question-file", str(csv), "--questions-folder", "nowhere"])
    with pytest.raises(FileNotFoundError, match="questions folder not found: nowhere"):
        worker.ai2d_items(worker.read_ai2d(str(csv))[0], elsewhere)


def test_a_test_image_without_questions_is_left_out_with_a_warning(tmp_path, caplog):
    csv = write_release(tmp_path, RELEASE, ["10", "99"])
    assert [x.question_id for x in read_split(str(csv))] == ["10.png-0", "10.png-1"]
    assert "1 AI2D test images have no question file" in caplog.text and "99" in caplog.text
    csv.write_text("98\n99\n")
    with pytest.raises(Ai2dFileError, match="no question file .* for any id"):
        read_split(str(csv))


@pytest.mark.parametrize("entry, message", [
    ({"answerTexts": ["a", "b"], "correctAnswer": 2, "questionId": "x", "abcLabel": False},
     r"'correctAnswer' 2 is not an index of its 2 answerTexts"),
    ({"answerTexts": ["a", "b"], "correctAnswer": 0, "abcLabel": False}, r"lacks 'questionId'"),
    ({"answerTexts": "a", "correctAnswer": 0, "questionId": "x", "abcLabel": False}, r"'answerTexts' must be"),
    ({"answerTexts": ["a"], "correctAnswer": True, "questionId": "x", "abcLabel": False}, r"'correctAnswer' must be"),
])
def test_bad_question_files_name_the_file(tmp_path, entry, message):
    csv = write_release(tmp_path, {"5": {"Q?": entry}}, ["5"])
    with pytest.raises(Ai2dFileError, match=r"questions/5\.png\.json: question 'Q\?'.*" + message):
        read_split(str(csv))


def test_score_by_hand(tmp_path):
    questions = read_split(str(write_release(tmp_path, RELEASE, ["10", "11"])))
    answers = [{"question_id": "10.png-0", "text": "C."},         # right (sun)
               {"question_id": "10.png-1", "text": "face"},       # an option's text: wrong
               {"question_id": "10.png-1", "text": "(D)"},        # a duplicate: the last one counts, right
               ]                                                  # 11.png-0 unanswered: wrong
    result = score_ai2d(questions, answers)
    assert (result["correct"], result["questions"]) == (2, 3) and result["accuracy"] == pytest.approx(200 / 3)
    assert result["missing"] == 1 and result["duplicates"] == 1 and result["not_a_letter"] == 0
    assert result["per_abc_label"] == {"plain": {"accuracy": 50.0, "correct": 1, "questions": 2},
                                       "abc_label": {"accuracy": 100.0, "correct": 1, "questions": 1}}


def test_cli_writes_the_score_and_refuses_foreign_answers(tmp_path, capsys):
    csv = write_release(tmp_path, RELEASE, ["10", "11"])
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": "10.png-0", "text": "C"}\n\n{"question_id": "11.png-0", "text": "B"}\n')
    assert scorer_main(["--question-file", str(csv), "--result-file", str(answers)]) == 0
    result = json.loads((tmp_path / "answers.score.json").read_text())
    assert result["accuracy"] == pytest.approx(200 / 3) and result["missing"] == 1
    assert "AI2D test: accuracy 66.67% (2 of 3" in capsys.readouterr().out
    answers.write_text('{"question_id": "10.png-0", "text": "C"}\n\n{"question_id": "12.png-0", "text": "B"}\n')
    assert scorer_main(["--question-file", str(csv), "--result-file", str(answers)]) == 2
    assert f"{answers}:3: question_id '12.png-0' is not a question of the split" in capsys.readouterr().err
    answers.write_text('{"question_id": "10.png-0", "text": "C"}\nnot json\n')
    assert scorer_main(["--question-file", str(csv), "--result-file", str(answers)]) == 2
    assert f"{answers}:2: not valid JSON" in capsys.readouterr().err
    assert scorer_main(["--question-file", str(tmp_path / "none.csv"), "--result-file", str(answers)]) == 2
    assert "test ids file not found" in capsys.readouterr().err


# ------------------------------------------------------------------- diagrams, read back from the pixels

INK = WORD_INK


def _is_ink(pixel) -> bool:
    return max(abs(a - b) for a, b in zip(pixel, INK)) <= 40


def _ink_near(image, x, y, r) -> int:
    return sum(_is_ink(image.getpixel((i, j))) for i in range(x - r, x + r + 1) for j in range(y - r, y + r + 1)
               if 0 <= i < image.width and 0 <= j < image.height)


def read_labels(image: Image.Image, scene: Scene) -> dict[int, str]:
    """The word under each shape: the one whose rendering by the scene renderer matches the pixels there."""
    labels = {}
    for shape in scene.shapes:
        cx, cy = (shape.cell % 3) * CELL + CELL // 2, (shape.cell // 3) * CELL + LABEL_Y
        box = (cx - 52, cy - 17, cx + 52, cy + 19)
        crop = image.crop(box).tobytes()
        found = [w for w in WORDS
                 if render(Scene(scene.background, (), Word(w, shape.cell, cx, cy))).crop(box).tobytes() == crop]
        assert len(found) == 1, (shape, found)
        labels[shape.cell] = found[0]
    return labels


def read_arrows(image: Image.Image, scene: Scene) -> set[tuple[int, int]]:
    """(source, target) cells of the arrows: ink half way between two nodes, the head where there is more ink."""
    cells = [s.cell for s in scene.shapes]
    arrows = set()
    for i, a in enumerate(cells):
        for b in cells[i + 1:]:
            (_, tip_b), (_, tip_a) = arrow_ends(a, b), arrow_ends(b, a)
            middle = ((tip_a[0] + tip_b[0]) // 2, (tip_a[1] + tip_b[1]) // 2)
            if not _ink_near(image, *middle, 2):
                continue

            def head_ink(tip, other):
                length = max(abs(other[0] - tip[0]), abs(other[1] - tip[1]))
                step = ((other[0] - tip[0]) / length, (other[1] - tip[1]) / length)
                return _ink_near(image, round(tip[0] + 6 * step[0]), round(tip[1] + 6 * step[1]), 5)

            arrows.add((a, b) if head_ink(tip_b, tip_a) > head_ink(tip_a, tip_b) else (b, a))
    return arrows


FORMS = {
    "arrow_target": r"Which shape does the arrow from the (\w+ \w+) point to\?",
    "label_of": r"What is the label of the (.+)\?",
    "label_target": r"What does the arrow from (\w+) point to\?",
    "shape_of_label": r"Which shape is labelled (\w+)\?",
    "arrows_in": r"How many arrows point to (\w+)\?",
}


def form_of(question: str) -> str:
    (form,) = [f for f, pattern in FORMS.items() if re.fullmatch(pattern, question)]
    return form


def expected_diagram_answer(question: str, scene: Scene, labels: dict, arrows: set) -> str:
    """The answer from what the image shows (shapes from the scene, labels and arrows from the pixels)."""
    name = {s.cell: f"{s.color} {s.kind}" for s in scene.shapes}
    by_label = {w.lower(): c for c, w in labels.items()}
    form = form_of(question)
    subject = re.fullmatch(FORMS[form], question)[1]

    def target(cell):
        (found,) = [b for a, b in arrows if a == cell]
        return found

    if form == "arrow_target":
        (source,) = [c for c, n in name.items() if n == subject]
        return name[target(source)]
    if form == "label_of":
        (cell,) = [s.cell for s in scene.shapes if subject in (s.kind, name[s.cell])]
        return labels[cell].lower()
    if form == "label_target":
        return labels[target(by_label[subject])].lower()
    if form == "shape_of_label":
        return name[by_label[subject]]
    return str(sum(b == by_label[subject] for _, b in arrows))


def test_a_hand_made_diagram_is_drawn_and_asked_about_as_built():
    nodes = (Node(Shape("circle", "red", "small", 0, 56, 40, 48), "CAT"),
             Node(Shape("square", "blue", "small", 2, 280, 40, 44), "DOG"),
             Node(Shape("star", "green", "small", 8, 280, 264, 50), "SUN"))
    diagram = Diagram("white", nodes, ((0, 2), (8, 2), (0, 8)))
    image = render_diagram(diagram)
    for node in nodes:
        assert image.getpixel((node.shape.cx, node.shape.cy)) == COLORS[node.shape.color]
    assert read_labels(image, diagram.scene) == {0: "CAT", 2: "DOG", 8: "SUN"}
    assert read_arrows(image, diagram.scene) == {(0, 2), (8, 2), (0, 8)}
    rng = random.Random(0)
    asked = {form: ask_diagram(diagram, rng, form, 1) for form in
             ("label_of", "shape_of_label", "arrows_in", "arrow_target", "label_target")}
    # the cat has two arrows out, the dog none: only the star's arrow can be asked about
    assert asked["arrow_target"].question == "Which shape does the arrow from the green star point to?"
    assert asked["arrow_target"].answer == "B" and asked["arrow_target"].options[1] == "blue square"
    assert asked["label_target"].question == "What does the arrow from sun point to?"
    assert asked["label_target"].answer_text == "dog" and asked["label_target"].options.count("dog") == 1
    assert asked["label_of"].answer == "B" and len(set(asked["label_of"].options)) == 4
    label_answer = {"What is the label of the circle?": "cat", "What is the label of the square?": "dog",
                    "What is the label of the star?": "sun"}[asked["label_of"].question]
    assert asked["label_of"].answer_text == label_answer
    counts = {"cat": "0", "dog": "2", "sun": "1"}
    assert asked["arrows_in"].answer_text == counts[asked["arrows_in"].question.split()[-1].rstrip("?")]


def test_diagrams_are_held_out_by_their_scene():
    rng = random.Random(7)
    for split in ("train", "eval"):
        for _ in range(20):
            d = sample_diagram(rng, split=split)
            assert scene_split(d.scene) == split and 2 <= len(d.nodes) <= 4
            assert len({n.shape.color for n in d.nodes}) == len(d.nodes)  # names are unique
            assert sum(a % 3 != b % 3 and a // 3 != b // 3 for a, b in d.arrows) <= 1  # no crossing diagonals


# ------------------------------------------------------------------------------------------ the sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("ai2d")
    return root, write_ai2d(root, seed=11, n=24)


def test_sample_layout_split_and_answers_match_the_pixels(sample):
    root, summary = sample
    base = root / "ai2d"
    questions = read_split(str(base / "ai2d_test_ids.csv"))
    assert len(questions) == summary.n_questions == 24
    files = sorted(p.name for p in (base / "questions").iterdir())
    test_ids = (base / "ai2d_test_ids.csv").read_text().split()
    assert len(files) == len(test_ids) + NON_TEST_IMAGES and test_ids == sorted(test_ids, key=int)
    assert sorted(c for c in summary.answers.values()) == [6, 6, 6, 6]
    for image_name in {x.image_name for x in questions}:
        data = json.loads((base / "questions" / f"{image_name}.json").read_text())
        assert data["imageName"] == image_name
        for text, entry in data["questions"].items():
            assert set(entry) == {"abcLabel", "answerTexts", "correctAnswer", "questionId"}
            assert entry["abcLabel"] is False and len(set(entry["answerTexts"])) == 4
    assert {form_of(x.question) for x in questions} == set(FORMS)  # every form is asked
    for x in questions:
        scene = summary.scenes[f"ai2d/images/{x.image_name}"]
        assert scene_split(scene) == "eval"
        image = Image.open(base / "images" / x.image_name).convert("RGB")
        assert image.size == (336, 336)
        for s in scene.shapes:
            assert image.getpixel((s.cx, s.cy)) == COLORS[s.color]
        expected = expected_diagram_answer(x.question, scene, read_labels(image, scene), read_arrows(image, scene))
        assert x.options[x.correct] == expected and x.options.count(expected) == 1, x


def test_sample_is_deterministic(sample, tmp_path):
    root, _ = sample

    def files(path):
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    write_ai2d(tmp_path / "same", seed=11, n=24)
    write_ai2d(tmp_path / "other", seed=12, n=24)
    assert files(tmp_path / "same") == files(root)
    assert files(tmp_path / "other") != files(root)


# ----------------------------------------------------------------------------------- the record's plan


def test_the_plan_runs_the_worker_then_the_scorer():
    bench = get("ai2d")
    answer, run = bench.plan(Context("DATA", "NAME"))
    assert isinstance(answer, Answer) and isinstance(run, Run)
    assert answer.module == "llava.eval.benchmarks.ai2d.worker" and answer.answers == "DATA/ai2d/answers/NAME.jsonl"
    assert answer.args == ("--question-file", "DATA/ai2d/ai2d_test_ids.csv", "--image-folder", "DATA/ai2d")
    assert run.module == "llava.eval.benchmarks.ai2d.scorer"
    assert run.args == ("--question-file", "DATA/ai2d/ai2d_test_ids.csv", "--result-file", answer.answers)
    assert bench.folder == "ai2d" and bench.lmms_task == "ai2d"


def test_the_plan_end_to_end_on_the_sample_with_the_embedded_default(tmp_path):
    """The record's steps on a small sample, answered by checkpoints/llava-v1.5-tiny: only test questions are
    asked, and the score the sweep reads is the scorer's accuracy."""
    bench = get("ai2d")
    write_ai2d(tmp_path, seed=3, n=4)
    answer, run = bench.plan(Context(str(tmp_path), "tiny"))
    assert worker.main([*answer.args, "--answers-file", answer.answers, "--model-path", DEFAULT_MODEL_PATH,
                        *GENERATION]) == 0
    lines = [json.loads(line) for line in Path(answer.answers).read_text().splitlines()]
    expected = [x.question_id for x in read_split(str(tmp_path / "ai2d" / "ai2d_test_ids.csv"))]
    assert [line["question_id"] for line in lines] == expected and len(expected) == 4
    assert all(line["prompt"].endswith(POST) for line in lines)
    assert scorer_main(list(run.args)) == 0
    result = json.loads((tmp_path / "ai2d" / "answers" / "tiny.score.json").read_text())
    right = sum(is_right(line["text"], x.correct) for line, x in
                zip(lines, read_split(str(tmp_path / "ai2d" / "ai2d_test_ids.csv"))))
    assert bench.score(tmp_path, "tiny") == pytest.approx(result["accuracy"]) == pytest.approx(100 * right / 4)
