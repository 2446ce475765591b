"""MMStar: its own answer rule on crafted answers, lmms-eval's aggregation (mean of sub-categories) beside
MMStar's (over questions), the release's parquet, clear errors, a sample whose answers follow from what the
images show, and the record's commands end to end."""

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from llava.constants import DEFAULT_MODEL_PATH
from llava.data.questions import PLACES
from llava.data.scenes import COLORS, POSITIONS, Scene, scene_split
from llava.eval.benchmarks import Answer, Context, Run, get
from llava.eval.benchmarks.mmstar import worker
from llava.eval.benchmarks.mmstar.sample import write_mmstar, write_parquet
from llava.eval.benchmarks.mmstar.scorer import is_right, main as scorer_main, read_mmstar, score_mmstar
from llava.eval.core.common import build_parser
from llava.eval.core.questions import QuestionFileError

from test_ai2d import expected_diagram_answer, read_arrows, read_labels

GENERATION = ["--device", "cpu", "--temperature", "0", "--conv-mode", "vicuna_v1", "--max_new_tokens", "3"]
POST = "\nAnswer with the option's letter from the given choices directly"
# MMStar's table (MMStar-Benchmark/MMStar eval/vlmeval/evaluate/mmstar.py), written out.
OFFICIAL = {
    "coarse perception": {"image scene and topic", "image style & quality", "image emotion"},
    "fine-grained perception": {"object counting", "recognition", "localization"},
    "instance reasoning": {"single-instance reasoning", "cross-instance attribute reasoning",
                           "cross-instance relation reasoning"},
    "logical reasoning": {"code & sequence reasoning", "diagram reasoning", "common reasoning"},
    "science & technology": {"biology & chemistry & physics", "electronics & energy & mechanical eng.",
                             "geography & earth science & agriculture"},
    "math": {"geometry", "numeric commonsense and calculation", "statistical reasoning"},
}


# ------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("response, answer, right", [
    ("A", "A", True),
    ("a", "A", True),
    ("B. blue", "B", True),
    ("(C)", "C", True),
    ("c)", "C", True),
    ("Option D", "D", True),
    ("The answer is B", "B", True),
    ("  \nB", "B", True),                 # stripped first
    ("the answer is (B)", "B", False),    # the 15th character is "("
    ("Answer: C", "C", False),            # only the start counts...
    ("Answer: C", "A", True),             # ... so this is A, as MMStar's code scores it
    ("blue", "B", True),                  # an option's text starting with the letter's character
    ("red", "B", False),
    ("", "A", False),
    ("(", "A", False),
    ("option ", "A", False),
])
def test_mmstar_rule(response, answer, right):
    assert is_right(response, answer) is right


def row(index, category, l2, answer="A", question="Q?\nOptions: A: x, B: y, C: z, D: w"):
    return {"index": index, "question": question, "answer": answer, "category": category, "l2_category": l2}


# Category "math": geometry 2 of 2 right, statistical reasoning 0 of 1; "coarse perception": image emotion 1 of 3.
ROWS = [row(0, "math", "geometry"), row(1, "math", "geometry", "B"), row(2, "math", "statistical reasoning"),
        row(3, "coarse perception", "image emotion"), row(4, "coarse perception", "image emotion"),
        row(5, "coarse perception", "image emotion", "C")]
ANSWERS = [{"question_id": 0, "text": "A"}, {"question_id": 1, "text": "(B)"}, {"question_id": 2, "text": "D"},
           {"question_id": 3, "text": "a"}, {"question_id": 5, "text": "D"}]  # 4 unanswered


def test_aggregation_by_hand():
    result = score_mmstar(ROWS, ANSWERS)
    # lmms-eval: a category is the mean of its sub-categories; the average the mean of all sub-categories
    assert result["per_category"]["math"]["score"] == pytest.approx(50.0)             # (100 + 0) / 2
    assert result["per_category"]["coarse perception"]["score"] == pytest.approx(100 / 3)
    assert result["average"] == pytest.approx((100 + 0 + 100 / 3) / 3)
    # MMStar: over questions
    assert result["per_category"]["math"]["accuracy"] == pytest.approx(200 / 3)         # 2 of 3
    assert result["final_score"] == pytest.approx(50.0) and result["correct"] == 3 and result["questions"] == 6
    assert result["per_l2_category"]["math/geometry"] == {"accuracy": 100.0, "correct": 2, "questions": 2}
    assert result["missing"] == 1
    assert list(result["per_category"]) == ["coarse perception", "math"]  # MMStar's order


# --------------------------------------------------------------------------------------- the release


def write_release(path: Path, rows: list[dict]) -> Path:
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(png, format="PNG")
    write_parquet(path, [{**r, "image": {"bytes": png.getvalue(), "path": f"{r['index']}.png"},
                          "meta_info": {"source": "MMBench", "split": "val", "image_path": "x.png"}} for r in rows])
    return path


def test_worker_prompt_is_lmms_evals(tmp_path):
    path = write_release(tmp_path / "mmstar.parquet", [
        row(7, "math", "geometry", question="  How many?\nOptions: A: 1, B: 2, C: 3, D: 4 "),
        row(9, "math", "geometry", question="Is it red? Please answer yes or no.\nOptions: A: yes, B: no")])
    args = build_parser(worker.TASK).parse_args(["--question-file", str(path)])
    items = [item for r in worker.read_questions(str(path)) for item in worker.mmstar_items(r, args)]
    assert items[0].text == "How many?\nOptions: A: 1, B: 2, C: 3, D: 4" + POST
    assert items[1].text == "Is it red?\nOptions: A: yes, B: no" + POST
    assert [i.record["question_id"] for i in items] == [7, 9] and items[0].record["prompt"] == items[0].text
    assert items[0].images[0].open().size == (32, 32)


def test_bad_releases_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lacking = tmp_path / "lacking.parquet"
    pq.write_table(pa.Table.from_pylist([{"index": 0, "question": "q"}]), lacking)
    with pytest.raises(QuestionFileError, match=r"lacking\.parquet: no column\(s\) answer, category, l2_category"):
        worker.read_questions(str(lacking))
    (tmp_path / "text.parquet").write_text("not parquet")
    assert scorer_main(["--question-file", str(tmp_path / "text.parquet"), "--result-file", "x.jsonl"]) == 2
    no_image = tmp_path / "no_image.parquet"
    pq.write_table(pa.Table.from_pylist([{**row(0, "math", "geometry"), "image": {"bytes": b"", "path": "0.png"}}]),
                   no_image)
    (r,) = worker.read_questions(str(no_image))
    with pytest.raises(QuestionFileError, match=r"no_image\.parquet\[0\]: 'image' must hold the image's bytes"):
        worker.mmstar_items(r, build_parser(worker.TASK).parse_args([]))


def test_cli_writes_the_score_and_refuses_foreign_answers(tmp_path, capsys):
    path = write_release(tmp_path / "mmstar.parquet", ROWS)
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(a) + "\n" for a in ANSWERS))
    assert scorer_main(["--question-file", str(path), "--result-file", str(answers)]) == 0
    result = json.loads((tmp_path / "answers.score.json").read_text())
    assert result["average"] == pytest.approx((100 + 0 + 100 / 3) / 3)
    assert get("mmstar").score is not None
    out = capsys.readouterr().out
    assert "MMStar: average 44.44% (mean of 3 l2 categories" in out and "over questions 50.00% (3 of 6)" in out
    answers.write_text('{"question_id": 0, "text": "A"}\n{"question_id": 42, "text": "A"}\n')
    assert scorer_main(["--question-file", str(path), "--result-file", str(answers)]) == 2
    assert f"{answers}:2: question_id 42 is not a question of" in capsys.readouterr().err
    answers.write_text('{"question_id": 0, "text": "A"}\n[1]\n')
    assert scorer_main(["--question-file", str(path), "--result-file", str(answers)]) == 2
    assert f"{answers}:2: expected a JSON object, got list" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the sample

PLACE_TO_POSITION = {phrase: position for position, phrase in PLACES.items()}
CORNERS = {"three corners": "triangle", "four corners": "square", "no corners": "circle", "five points": "star"}
MEANINGS = {"cat": "an animal", "dog": "an animal", "fish": "an animal", "bird": "an animal", "tree": "a plant",
            "cake": "a food", "sun": "something in the sky", "moon": "something in the sky",
            "book": "a thing people make", "lamp": "a thing people make", "door": "a thing people make",
            "ship": "a thing people make"}


def name(shape) -> str:
    return f"{shape.color} {shape.kind}"


def one(scene: Scene, phrase: str):
    """The shape a reference phrase ("red circle", "circle", "red shape", "shape at the top left", ...) names."""
    position = None
    for place, pos in PLACE_TO_POSITION.items():
        if phrase.endswith(" " + place):
            phrase, position = phrase[: -len(place) - 1], pos
    words = phrase.split()
    fits = [s for s in scene.shapes if (position is None or s.position == position)
            and all(w in (s.color, s.kind, "shape") for w in words)]
    assert len(fits) == 1, (phrase, scene)
    return fits[0]


def direction(a, b) -> str:
    """Where shape a is from shape b, in one row or column."""
    (ar, ac), (br, bc) = divmod(a.cell, 3), divmod(b.cell, 3)
    assert ar == br or ac == bc
    return "west" if ac < bc else "east" if ac > bc else "north" if ar < br else "south"


def expected_answer(question: str, options: list[str], scene: Scene, image: Image.Image) -> str:
    shapes, q = scene.shapes, question
    if q == "What color is the background?":
        return scene.background
    if m := re.fullmatch(r"What color is the shape (to the left of|to the right of|above|below) the (.+)\?", q):
        anchor = one(scene, m[2])
        rel = {"to the left of": "west", "to the right of": "east", "above": "north", "below": "south"}[m[1]]
        (fit,) = [s for s in shapes if s is not anchor and rel in _directions(s, anchor)]
        return fit.color
    if m := re.fullmatch(r"What color is the shape with (.+)\?", q):
        (fit,) = [s for s in shapes if s.kind == CORNERS[m[1]]]
        return fit.color
    if m := re.fullmatch(r"What color is the (.+)\?", q):
        return one(scene, m[1]).color
    if q == "Which of these shapes is in the image?":
        (present,) = [o for o in options if o in {name(s) for s in shapes}]
        return present
    if q == "How many shapes are there?":
        return str(len(shapes))
    if m := re.fullmatch(r"How many (\w+) shapes are there\?", q):
        return str(sum(s.color == m[1] for s in shapes))
    if m := re.fullmatch(r"How many (\w+)s are there\?", q):
        return str(sum(s.kind == m[1] for s in shapes))
    if q == "What word is written in the image?":
        return scene.word.text.lower()
    if m := re.fullmatch(r"Where is the (.+) relative to the (.+)\?", q):
        return {"west": "left", "east": "right", "north": "above", "south": "below"}[
            direction(one(scene, m[1]), one(scene, m[2]))]
    if m := re.fullmatch(r"Where is the (.+)\?", q):
        return POSITIONS[one(scene, m[1]).cell]
    if m := re.fullmatch(r"What shape is (\w+)\?", q):
        (fit,) = [s for s in shapes if s.color == m[1]]
        return fit.kind
    if m := re.fullmatch(r"What shape is (.+)\?", q):
        (fit,) = [s for s in shapes if s.position == PLACE_TO_POSITION[m[1]]]
        return fit.kind
    if m := re.fullmatch(r"Reading from left to right and top to bottom, which shape comes after the (.+)\?", q):
        ordered = sorted(shapes, key=lambda s: s.cell)
        return name(ordered[ordered.index(one(scene, m[1])) + 1])
    if q == "Which shape is the largest?":
        (large,) = [s for s in shapes if s.size == "large"]
        return name(large)
    if q == "What does the word in the image name?":
        return MEANINGS[scene.word.text.lower()]
    if m := re.fullmatch(r"On a map with north at the top, in which direction is the (.+) from the (.+)\?", q):
        return direction(one(scene, m[1]), one(scene, m[2]))
    if q == "If one more shape were added, how many shapes would there be?":
        return str(len(shapes) + 1)
    if q == "Which color do most of the shapes have?":
        counts = sorted((sum(s.color == c for s in shapes), c) for c in COLORS)
        assert counts[-1][0] > counts[-2][0] >= 0
        return counts[-1][1]
    return expected_diagram_answer(q, scene, read_labels(image, scene), read_arrows(image, scene))


def _directions(a, b) -> set[str]:
    (ar, ac), (br, bc) = divmod(a.cell, 3), divmod(b.cell, 3)
    return {d for d, holds in (("west", ac < bc), ("east", ac > bc), ("north", ar < br), ("south", ar > br)) if holds}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmstar")
    return root, write_mmstar(root, seed=5, n=36)


def test_sample_columns_categories_and_answers_match_the_images(sample):
    import pyarrow.parquet as pq

    root, summary = sample
    path = root / "MMStar" / "mmstar.parquet"
    table = pq.read_table(path)
    assert table.schema.names == ["index", "question", "image", "answer", "category", "l2_category", "meta_info"]
    assert json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]["image"] == {"_type": "Image"}
    rows = table.to_pylist()
    assert [r["index"] for r in rows] == list(range(36)) and summary.n_questions == 36
    assert {(r["category"], r["l2_category"]) for r in rows} == {(c, l2) for c, l2s in OFFICIAL.items() for l2 in l2s}
    assert sorted(summary.answers.values()) == [9, 9, 9, 9]
    for r in rows:
        question, options_line = r["question"].split("\nOptions: ")
        options = re.findall(r"(?:^|, )([ABCD]): (.+?)(?=, [ABCD]: |$)", options_line)
        assert [letter for letter, _ in options] == ["A", "B", "C", "D"], r["question"]
        texts = [text for _, text in options]
        scene = summary.scenes[f"MMStar/mmstar.parquet#{r['index']}"]
        assert scene_split(scene) == "eval"
        image = Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")
        for s in scene.shapes:
            assert image.getpixel((s.cx, s.cy)) == COLORS[s.color]
        expected = expected_answer(question, texts, scene, image)
        assert texts["ABCD".index(r["answer"])] == expected and texts.count(expected) == 1, r["question"]


def test_sample_is_deterministic(sample, tmp_path):
    root, _ = sample
    write_mmstar(tmp_path / "same", seed=5, n=36)
    write_mmstar(tmp_path / "other", seed=6, n=36)
    data = (root / "MMStar" / "mmstar.parquet").read_bytes()
    assert (tmp_path / "same" / "MMStar" / "mmstar.parquet").read_bytes() == data
    assert (tmp_path / "other" / "MMStar" / "mmstar.parquet").read_bytes() != data


def test_scorer_reads_the_sample(sample):
    root, _ = sample
    rows = read_mmstar(str(root / "MMStar" / "mmstar.parquet"))
    perfect = [{"question_id": r["index"], "text": r["answer"]} for r in rows]
    assert score_mmstar(rows, perfect)["average"] == pytest.approx(100.0)
    assert score_mmstar(rows, [])["average"] == 0.0


# ----------------------------------------------------------------------------------- the record's plan


def test_the_plan_runs_the_worker_then_the_scorer():
    bench = get("mmstar")
    answer, run = bench.plan(Context("DATA", "NAME"))
    assert isinstance(answer, Answer) and isinstance(run, Run)
    assert answer.module == "llava.eval.benchmarks.mmstar.worker"
    assert answer.answers == "DATA/MMStar/answers/NAME.jsonl"
    assert answer.args == ("--question-file", "DATA/MMStar/mmstar.parquet")
    assert run.module == "llava.eval.benchmarks.mmstar.scorer"
    assert run.args == ("--question-file", "DATA/MMStar/mmstar.parquet", "--result-file", answer.answers)
    assert bench.folder == "MMStar" and bench.files == ("mmstar.parquet",) and bench.lmms_task == "mmstar"


def test_the_plan_end_to_end_on_the_sample_with_the_embedded_default(tmp_path):
    """The record's steps on a small sample, answered by checkpoints/llava-v1.5-tiny; the score the sweep reads
    is the scorer's `average`."""
    bench = get("mmstar")
    write_mmstar(tmp_path, seed=3, n=4)
    answer, run = bench.plan(Context(str(tmp_path), "tiny"))
    assert worker.main([*answer.args, "--answers-file", answer.answers, "--model-path", DEFAULT_MODEL_PATH,
                        *GENERATION]) == 0
    lines = [json.loads(line) for line in Path(answer.answers).read_text().splitlines()]
    assert [line["question_id"] for line in lines] == [0, 1, 2, 3]
    assert all(line["prompt"].endswith(POST) and "\nOptions: A: " in line["prompt"] for line in lines)
    assert scorer_main(list(run.args)) == 0
    rows = read_mmstar(str(tmp_path / "MMStar" / "mmstar.parquet"))
    rights = [float(is_right(line["text"], r["answer"])) for line, r in zip(lines, rows)]
    # four questions of four sub-categories: the average is their mean
    assert bench.score(tmp_path, "tiny") == pytest.approx(100 * sum(rights) / 4)
