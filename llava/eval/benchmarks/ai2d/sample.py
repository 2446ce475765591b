"""AI2D: ai2d/questions/<id>.png.json, ai2d/images/<id>.png and ai2d/ai2d_test_ids.csv, as the release lays them.

Each image is a diagram of the scene world (`llava.data.diagrams`: shapes in the corners, a word below each as
its label, arrows between them) with one to three questions, four options each, as AI2D's question files hold
them. A few images are not in the test ids, as most of the release is not: the worker and the scorer must leave
their questions out. No question is an abcLabel one (those ask about letters drawn over the diagram's text,
which the tiny model does not read), so there is no abc_images/.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.diagrams import DIAGRAM_QUESTIONS, ask_diagram, draw_diagram, render_diagram
from llava.data.layouts.common import Summary, rng_for, unique_name, write_json
from llava.data.questions import LETTERS
from llava.data.shapes import encode

MAX_QUESTIONS_PER_IMAGE = 3
NON_TEST_IMAGES = 2  # images of the release outside the test split


def _diagram_questions(diagram, rng, first_position: int, k: int) -> list:
    """Up to k questions of different forms (so of different texts: a question file keys them by text)."""
    questions = []
    for form in rng.sample(sorted(DIAGRAM_QUESTIONS), len(DIAGRAM_QUESTIONS)):
        if len(questions) == k:
            break
        qa = ask_diagram(diagram, rng, form, (first_position + len(questions)) % len(LETTERS[:4]))
        if qa is not None and all(qa.question != q.question for q in questions):
            questions.append(qa)
    return questions


def write_ai2d(root: Path, seed: int, n: int) -> Summary:
    """About n test questions (and NON_TEST_IMAGES more images' questions outside the split); correct answers
    cycle through the four positions."""
    rng, seen, used, scenes = rng_for(seed, "ai2d"), set(), set(), {}
    test_ids, answers, forms, n_test = [], Counter(), Counter(), 0
    base = root / "ai2d"

    def write_image(k: int, first_position: int) -> tuple[str, list]:
        diagram, questions = draw_diagram(rng, lambda d: _diagram_questions(d, rng, first_position, k) or None, seen)
        image_id = unique_name(rng, used, "{}", 4)
        image_name = f"{image_id}.png"
        (base / "images").mkdir(parents=True, exist_ok=True)
        (base / "images" / image_name).write_bytes(encode(render_diagram(diagram), "png"))
        scenes[f"ai2d/images/{image_name}"] = diagram.scene
        entries = {qa.question: {"abcLabel": False, "answerTexts": list(qa.options),
                                 "correctAnswer": LETTERS.index(qa.answer), "questionId": f"{image_name}-{j}"}
                   for j, qa in enumerate(questions)}
        write_json(base / "questions" / f"{image_name}.json", {"imageName": image_name, "questions": entries},
                   indent=4)
        return image_id, questions

    while n_test < n:
        image_id, questions = write_image(min(rng.randint(1, MAX_QUESTIONS_PER_IMAGE), n - n_test), n_test)
        test_ids.append(image_id)
        n_test += len(questions)
        answers.update(qa.answer for qa in questions)
        forms.update(qa.detail for qa in questions)
    for _ in range(NON_TEST_IMAGES):
        write_image(MAX_QUESTIONS_PER_IMAGE, 0)
    (base / "ai2d_test_ids.csv").write_text("".join(f"{i}\n" for i in sorted(test_ids, key=int)))
    return Summary(
        "AI2D (test)", ["ai2d/ai2d_test_ids.csv", "ai2d/questions/<id>.png.json", "ai2d/images/<id>.png"], n_test,
        answers, ["25% for a uniform random letter or any constant letter (correct answers cycle through A-D)"],
        [f"{len(test_ids)} test diagrams with 1-{MAX_QUESTIONS_PER_IMAGE} questions each, and {NON_TEST_IMAGES} "
         "diagrams outside the test split (their questions must not be asked); question forms: "
         + ", ".join(f"{f} ({c})" for f, c in sorted(forms.items())),
         "Question files as the release's: {imageName, questions: {text: {abcLabel, answerTexts, correctAnswer, "
         "questionId}}}; no abcLabel questions."],
        scenes=scenes,
    )
