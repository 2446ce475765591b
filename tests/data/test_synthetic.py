"""Synthetic data: determinism, ground truth, question/answer consistency, training JSON format (stages 0-2)."""

import json
import random
import re

import pytest

from llava.data import (
    QUESTION_TYPES, caption, corpus, prompt, qa_pairs, render, sample_scene, write_described_set, write_training_set,
)
from llava.data.questions import (
    DEFAULT_TYPES, HINTS, LETTERS, OPTION_PROMPT, PLACES, SHORT_ANSWER_PROMPT, ask_exist, ask_mc, ask_verify,
    knowledge_question,
)
from llava.data.scenes import BACKGROUNDS, CELL, COLORS, KINDS, POSITIONS, Scene, cell_center, scene_split
from llava.data.synthetic import training_scene


def scenes(seed, n, **kwargs):
    rng = random.Random(seed)
    return [sample_scene(rng, **kwargs) for _ in range(n)]


# ------------------------------------------------------------------------------- an independent reader
# Re-derives answers from the question text and the scene, without the generator's reference helpers.

PLACE_TO_CELL = {place: POSITIONS.index(pos) for pos, place in PLACES.items()}
RELATION_TEST = {
    "to the left of": lambda a, b: a.cell % 3 < b.cell % 3,
    "to the right of": lambda a, b: a.cell % 3 > b.cell % 3,
    "above": lambda a, b: a.cell // 3 < b.cell // 3,
    "below": lambda a, b: a.cell // 3 > b.cell // 3,
}


def resolve(scene: Scene, phrase: str):
    """The shapes a noun phrase like "red circle at the top left" / "shape on the left" denotes."""
    cell = None
    for place, c in PLACE_TO_CELL.items():
        if phrase.endswith(" " + place):
            phrase, cell = phrase[: -len(place) - 1], c
    words = phrase.split()
    color = words[0] if words[0] in COLORS else None
    kind = words[-1] if words[-1] in KINDS else None
    assert words[-1] in KINDS or words[-1] == "shape", phrase
    return [s for s in scene.shapes
            if color in (None, s.color) and kind in (None, s.kind) and cell in (None, s.cell)]


def one(scene, phrase):
    found = resolve(scene, phrase)
    assert len(found) == 1, (phrase, scene)
    return found[0]


def expected_answer(scene: Scene, question: str) -> str:
    q = question
    if q == "How many shapes are there?":
        return str(len(scene.shapes))
    if m := re.fullmatch(r"How many (\w+)s are there\?", q):
        return str(sum(s.kind == m[1] for s in scene.shapes))
    if m := re.fullmatch(r"How many (\w+) shapes are there\?", q):
        return str(sum(s.color == m[1] for s in scene.shapes))
    if m := re.fullmatch(r"Is there a (\w+) (\w+)(?: in the image| in this image)?\?", q):
        return "yes" if any(s.color == m[1] and s.kind == m[2] for s in scene.shapes) else "no"
    if m := re.fullmatch(r"What color is the (.+)\?", q):
        return scene.background if m[1] == "background" else one(scene, m[1]).color
    if m := re.fullmatch(r"What shape is (\w+)\?", q):
        (shape,) = [s for s in scene.shapes if s.color == m[1]]
        return shape.kind
    if m := re.fullmatch(r"What shape is (.+)\?", q):
        return next(s.kind for s in scene.shapes if s.cell == PLACE_TO_CELL[m[1]])
    if m := re.fullmatch(r"Where is the (.+) relative to the (.+)\?", q):
        a, b = one(scene, m[1]), one(scene, m[2])
        (rel,) = [r for r, test in RELATION_TEST.items() if test(a, b)]
        return {"to the left of": "left", "to the right of": "right"}.get(rel, rel)
    if m := re.fullmatch(r"Where is the (.+)\?", q):
        return POSITIONS[one(scene, m[1]).cell]
    if q == "What word is written in the image?":
        return scene.word.text.lower()
    if m := re.fullmatch(r'Is the word in the image "(\w+)"\?', q):
        return "yes" if scene.word.text.lower() == m[1] else "no"
    if q == "Is there only one shape in the image?":
        return "yes" if len(scene.shapes) == 1 else "no"
    if m := re.fullmatch(r"Are there (\d) shapes in the image\?", q):
        return "yes" if len(scene.shapes) == int(m[1]) else "no"
    if m := re.fullmatch(r"Is the (.+) (to the left of|to the right of|above|below) the (.+)\?", q):
        return "yes" if RELATION_TEST[m[2]](one(scene, m[1]), one(scene, m[3])) else "no"
    if m := re.fullmatch(r"Is the (.+) an? (\w+) or an? (\w+)\?", q):
        shape = one(scene, m[1])
        assert shape.kind in (m[2], m[3])
        return shape.kind
    if m := re.fullmatch(r"Is the (.+) (\w+) or (\w+)\?", q):
        shape = one(scene, m[1])
        assert shape.color in (m[2], m[3])
        return shape.color
    if m := re.fullmatch(r"Is the (.+) (\w+)\?", q):
        return "yes" if one(scene, m[1]).color == m[2] else "no"
    raise AssertionError(f"question not understood: {q}")


# --------------------------------------------------------------------------------------------- scenes


def test_scene_sampling_bounds_and_layout():
    for scene in scenes(0, 300):
        assert 1 <= len(scene.shapes) <= 4
        cells = [s.cell for s in scene.shapes] + ([scene.word.cell] if scene.word else [])
        assert len(set(cells)) == len(cells)
        for s in scene.shapes:
            row, col = divmod(s.cell, 3)
            x0, y0, x1, y1 = s.box
            # inside its own grid cell, hence never overlapping another object
            assert col * CELL <= x0 and x1 <= (col + 1) * CELL and row * CELL <= y0 and y1 <= (row + 1) * CELL
            assert (40 <= s.extent <= 60) if s.size == "small" else (84 <= s.extent <= 104)
        assert Scene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene


def test_sampling_uses_only_the_given_rng():
    random.seed(1)
    a = scenes(5, 20)
    random.seed(2)
    assert scenes(5, 20) == a
    assert scenes(6, 20) != a


def test_rendered_centre_pixel_has_the_shape_colour():
    for scene in scenes(1, 100):
        image = render(scene)
        assert image.size == (336, 336) and image.mode == "RGB"
        for s in scene.shapes:
            assert image.getpixel((s.cx, s.cy)) == COLORS[s.color], s
        used = {s.cell for s in scene.shapes} | ({scene.word.cell} if scene.word else set())
        for cell in set(range(9)) - used:
            assert image.getpixel(cell_center(cell)) == BACKGROUNDS[scene.background]


def test_words_are_drawn_inside_their_cell():
    for scene in scenes(2, 40, with_word=True):
        image = render(scene).convert("L")
        row, col = divmod(scene.word.cell, 3)
        cell = image.crop((col * CELL, row * CELL, (col + 1) * CELL, (row + 1) * CELL))
        dark = sum(cell.histogram()[:80])
        assert dark > 150, scene.word  # a readable word, not a speck
        assert cell.getbbox() is not None


def test_scene_split_is_stable_and_respected():
    train, evals = scenes(3, 200, split="train"), scenes(3, 200, split="eval")
    assert all(scene_split(s) == "train" for s in train)
    assert all(scene_split(s) == "eval" for s in evals)
    assert not {s.signature() for s in train} & {s.signature() for s in evals}
    fraction = sum(scene_split(s) == "eval" for s in scenes(4, 2000, split=None)) / 2000
    assert 0.08 < fraction < 0.18  # one bucket in 8


# ------------------------------------------------------------------------------------------- questions


def test_every_answer_matches_the_scene():
    rng = random.Random(7)
    seen_types = set()
    for scene in scenes(7, 400):
        for qa in qa_pairs(scene, rng, k=6):
            seen_types.add("mc" if qa.options else qa.kind)
            truth = expected_answer(scene, qa.question)
            assert qa.answer_text == truth, (qa, scene)
    assert seen_types == set(DEFAULT_TYPES)


# focused type -> (the kind, detail and multiple-choice-ness every one of its questions must have)
FOCUSED = {
    "verify_word": ("verify", "word", False), "verify_relation": ("verify", "relation", False),
    "mc_color": ("color", "", True), "mc_position": ("position", "", True), "mc_relation": ("relation", "", True),
    "mc_word": ("word", "", True),
}


def test_focused_types_ask_only_their_sub_type_and_answer_right():
    assert set(QUESTION_TYPES) == set(DEFAULT_TYPES) | set(FOCUSED) | set(FORM_TYPES)
    rng = random.Random(11)
    for name, (kind, detail, multiple_choice) in FOCUSED.items():
        asked = 0
        for scene in scenes(11, 200, with_word=True):
            for qa in qa_pairs(scene, rng, types=[name], k=2):
                asked += 1
                assert (qa.kind, qa.detail, bool(qa.options)) == (kind, detail, multiple_choice), (name, qa)
                assert qa.answer_text == expected_answer(scene, qa.question), (name, qa, scene)
        assert asked > 150, name


FORM_TYPES = {"mc_mmbench_cn": "cn", "mc_qbench": "en", "mc_qbench_zh": "zh",
              "mc_mmbench_cn_color": "cn", "mc_mmbench_cn_position": "cn", "mc_mmbench_cn_relation": "cn"}


@pytest.mark.parametrize("name", sorted(FORM_TYPES))
def test_form_types_are_right_and_prompted_as_the_benchmarks_worker_asks(name):
    """The training prompt of a form type is the text the benchmark's worker builds for the same question."""
    import argparse

    from llava.eval.benchmarks.mmbench.worker import mmbench_items
    from llava.eval.benchmarks.qbench.worker import qbench_items
    from llava.eval.core.questions import Row

    rng, asked, yes_no = random.Random(5), 0, 0
    for scene in scenes(5, 150, with_word=True):
        for qa in qa_pairs(scene, rng, types=[name], k=1):
            asked += 1
            assert qa.answer_text.lower() == expected_answer(scene, qa.question).lower(), (name, qa)
            yes_no += qa.options == ("Yes", "No")
            if name.startswith("mc_mmbench_cn_"):  # one question type only, e.g. mc_mmbench_cn_relation
                assert qa.kind == name.removeprefix("mc_mmbench_cn_"), (name, qa)
            if name.startswith("mc_mmbench_cn"):
                row = Row("t", {"index": "0", "question": qa.question, "hint": qa.hint or None, "image": "",
                                **dict(zip("ABCD", qa.options))})
                (item,) = mmbench_items(row, argparse.Namespace(all_rounds=False, single_pred_prompt=True, lang="cn"))
                assert prompt(qa, "mmbench") == item.text
            else:
                row = Row("t", {"img_path": "x.jpg", "question": qa.question, "candidates": list(qa.options),
                                "question_id": 0})
                (item,) = qbench_items(row, argparse.Namespace(image_folder="", lang=FORM_TYPES[name]))
                assert prompt(qa) == item.text
    assert asked > 60  # a relation needs two shapes in one row or column: about half the scenes
    assert (yes_no > 20) == name.startswith("mc_qbench")  # Q-Bench also asks yes/no between "Yes" and "No"


def test_multiple_choice_letter_points_at_the_true_answer():
    rng = random.Random(8)
    n = 0
    for scene in scenes(8, 300, with_word=True):
        qa = ask_mc(scene, rng)
        if qa is None:
            continue
        n += 1
        assert len(set(qa.options)) == len(qa.options) == 4
        assert qa.options[LETTERS.index(qa.answer)] == expected_answer(scene, qa.question)
        text = prompt(qa, "sqa")
        assert text.endswith("\n" + OPTION_PROMPT)
        assert f"\n{qa.answer}. {qa.answer_text}\n" in text
    assert n > 200
    letters = [ask_mc(s, rng, base="color").answer for s in scenes(9, 400)]
    assert all(60 < letters.count(letter) < 140 for letter in "ABCD")


def test_knowledge_questions_need_no_image():
    rng = random.Random(9)
    corners = {"three corners": "triangle", "four corners": "square", "no corners": "circle", "five points": "star"}
    for _ in range(100):
        qa = knowledge_question(rng)
        assert qa.answer in LETTERS[: len(qa.options)] and len(set(qa.options)) == len(qa.options)
        if m := re.fullmatch(r"Which shape has (.+)\?", qa.question):
            assert qa.answer_text == corners[m[1]]
        if qa.question == "Which of these is a color?":
            assert [o in COLORS for o in qa.options].count(True) == 1 and qa.answer_text in COLORS


@pytest.mark.parametrize("ask", [ask_exist, ask_verify])
def test_yes_no_questions_are_balanced(ask):
    rng = random.Random(10)
    answers = [qa.answer for s in scenes(10, 3000, with_word=True) if (qa := ask(s, rng)) is not None]
    assert len(answers) > 1500
    assert 0.46 < answers.count("yes") / len(answers) < 0.54


def test_short_answer_prompt_and_ocr_line():
    rng = random.Random(11)
    scene = scenes(11, 1, with_word=True)[0]
    qa = QUESTION_TYPES["word"](scene, rng, with_ocr=True)
    lines = prompt(qa).split("\n")
    assert lines[0] == "What word is written in the image?" and lines[2] == SHORT_ANSWER_PROMPT
    assert lines[1].startswith("Reference OCR token: ") and scene.word.text in lines[1]


def test_caption_lists_every_object():
    for scene in scenes(12, 100):
        text = caption(scene)
        assert text.endswith(f"on a {scene.background} background.") and text == text.lower()
        for s in scene.shapes:
            assert f"a {s.size} {s.color} {s.kind} {PLACES[s.position]}" in text
        assert (scene.word is not None) == ("the word " in text)


def test_corpus_is_finite_and_covers_the_vocabulary():
    lines = list(corpus())
    assert lines == list(corpus())
    text = "\n".join(lines)
    for word in list(COLORS) + list(KINDS) + list(POSITIONS) + [SHORT_ANSWER_PROMPT, OPTION_PROMPT]:
        assert word in text
    rng = random.Random(13)
    vocab = set(text.replace("\n", " ").split())
    for scene in scenes(13, 50, with_word=True):
        for qa in qa_pairs(scene, rng, k=5):
            for token in prompt(qa).replace("\n", " ").split():
                assert token in vocab or token.strip(",") in vocab, token


# ------------------------------------------------------------------------------------------ training set


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_training_set_is_deterministic(tmp_path):
    for stage in (1, 2):
        write_training_set(tmp_path / "a", 12, seed=3, stage=stage)
        write_training_set(tmp_path / "b", 12, seed=3, stage=stage)
    write_training_set(tmp_path / "c", 12, seed=4, stage=2)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert a == b
    assert a["llava_tiny_finetune.json"] != c["llava_tiny_finetune.json"]
    assert a["images/seed3/000000.png"] != c["images/seed4/000000.png"]


def _check_conversation(record, image_dir, short_answers=True):
    turns = record["conversations"]
    assert len(turns) >= 2 and len(turns) % 2 == 0
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    all_text = "".join(t["value"] for t in turns)
    if "image" in record:
        assert (image_dir / record["image"]).is_file()
        assert all_text.count("<image>") == 1 and "<image>" in turns[0]["value"]
    else:
        assert "<image>" not in all_text
    for t in turns[1::2]:
        assert t["value"] and "\n" not in t["value"]
        assert len(t["value"].split()) <= 2 or not short_answers


def test_training_json_format(tmp_path):
    pretrain = json.loads(write_training_set(tmp_path, 30, seed=1, stage=1).read_text())
    finetune = json.loads(write_training_set(tmp_path, 30, seed=1, stage=2, text_only_fraction=0.1).read_text())
    assert len(pretrain) == 30 and len(finetune) == 33
    for record in pretrain:
        _check_conversation(record, tmp_path, short_answers=False)
        assert len(record["conversations"]) == 2
        human, gpt = (t["value"] for t in record["conversations"])
        assert human.startswith("<image>\n") or human.endswith("\n<image>")
        assert gpt == caption(Scene.from_dict(_scene_of(tmp_path, 1, record["image"])))
    assert sum("image" not in r for r in finetune) == 3
    for record in finetune:
        _check_conversation(record, tmp_path)
        if "image" in record:
            assert record["conversations"][0]["value"].startswith("<image>\n")
    assert max(len(r["conversations"]) for r in finetune) > 2  # multi-turn
    checked = 0
    for record in finetune:
        if "image" not in record:
            continue
        scene = Scene.from_dict(_scene_of(tmp_path, 1, record["image"]))
        assert scene == training_scene(1, int(record["id"].split("-")[1]))
        checked += check_answers(record, scene)
    assert checked > 60


def _scene_of(out_dir, seed, image):
    for line in (out_dir / f"scenes_seed{seed}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["image"] == image:
            return row["scene"]
    raise KeyError(image)


def check_answers(record, scene):
    """Assert every answer of `record` is what the independent reader derives from `scene`; return how many."""
    turns = record["conversations"]
    for human, gpt in zip(turns[::2], turns[1::2]):
        question, options = parse_turn(human["value"])
        answer = options[LETTERS.index(gpt["value"])] if options else gpt["value"]
        assert answer == expected_answer(scene, question), (human, gpt)
    return len(turns) // 2


def parse_turn(value):
    """(question, options) from a user turn in any of the training prompt formats."""
    lines = [line for line in value.replace("<image>\n", "").split("\n")[:-1]
             if not line.startswith(("Context: ", "Reference OCR token: ")) and line not in HINTS]
    options = [line[3:] for line in lines if re.match(r"[A-E]\. ", line)]
    (question,) = [line for line in lines if not re.match(r"[A-E]\. ", line)]
    return question, options


def test_question_types_can_be_restricted(tmp_path):
    path = write_training_set(tmp_path, 20, seed=2, stage=2, types=["color", "count"], text_only_fraction=0)
    for record in json.loads(path.read_text()):
        for turn in record["conversations"][::2]:
            assert turn["value"].replace("<image>\n", "").startswith(("What color", "How many"))
    with pytest.raises(ValueError, match="unknown question types"):
        write_training_set(tmp_path, 1, stage=2, types=["colour"])


def test_described_set_states_the_scene_and_answers_from_it(tmp_path):
    path = write_described_set(tmp_path / "a", 25, seed=5, types=["exist", "verify", "mc", "count"], turns=(2, 4))
    records = json.loads(path.read_text())
    assert path.name == "llava_tiny_described.json" and len(records) == 25
    assert not (tmp_path / "a" / "images").exists()
    checked = 0
    for i, record in enumerate(records):
        _check_conversation(record, tmp_path)
        assert "image" not in record and 2 <= len(record["conversations"]) // 2 <= 4
        # Each record's scene comes from its own stream, "described/<seed>/<index>".
        scene = sample_scene(random.Random(f"described/5/{i}"), split="train")
        context = f"The image shows {caption(scene)}\n"
        assert record["conversations"][0]["value"].startswith(context)
        record["conversations"][0]["value"] = record["conversations"][0]["value"][len(context):]
        checked += check_answers(record, scene)
    assert checked > 50
    assert write_described_set(tmp_path / "b", 25, seed=5, types=["exist", "verify", "mc", "count"],
                               turns=(2, 4)).read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="unknown question types"):
        write_described_set(tmp_path, 1, types=["colour"])


def test_finetune_mix_appends_described_conversations(tmp_path):
    plain = json.loads(write_training_set(tmp_path / "a", 10, seed=1, stage=2, text_only_fraction=0).read_text())
    mixed = json.loads(write_training_set(tmp_path / "b", 10, seed=1, stage=2, text_only_fraction=0,
                                          n_described=4, described_turns=(1, 1)).read_text())
    assert mixed[:len(plain)] == plain and len(mixed) == len(plain) + 4
    for record in mixed[len(plain):]:
        assert "image" not in record and len(record["conversations"]) == 2
        assert record["conversations"][0]["value"].startswith("The image shows a")
