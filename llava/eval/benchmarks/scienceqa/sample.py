"""ScienceQA: scienceqa/llava_test_CQM-A.json, problems.json, pid_splits.json, images/test/<id>/image.png."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, write_json
from llava.data.questions import HINTS, LETTERS, QA, ask_mc, keep_options, knowledge_question, question_block
from llava.data.scenes import Scene

SQA_BASES = ("color", "shape", "position", "count", "relation", "background")


def _sqa_question(scene: Scene, rng: random.Random) -> QA | None:
    """A multiple-choice question with 2-4 choices and, half of the time, a context sentence."""
    hint = rng.choice(HINTS) if rng.random() < 0.5 else ""
    qa = ask_mc(scene, rng, base=rng.choice(SQA_BASES), hint=hint)
    if qa is None:
        return None
    return keep_options(qa, rng.choice((2, 3, 4)), rng)


def write_scienceqa(root: Path, seed: int, n: int) -> Summary:
    """n problems: 5/6 multiple choice about an image (2-4 choices), 1/6 text-only (no image), as the
    real test split mixes both. llava_test_CQM-A.json holds the prompt without the option instruction;
    model_vqa_science adds it with --single-pred-prompt."""
    rng, seen, scenes = rng_for(seed, "scienceqa"), set(), {}
    entries, problems, answers, chances = [], {}, Counter(), []
    n_text = max(1, n // 6)
    text_slots = set(rng.sample(range(n), n_text))
    for k in range(n):
        pid = str(k + 1)
        if k in text_slots:
            qa, scene = knowledge_question(rng), None
        else:
            scene, qa = draw_scene(rng, lambda s: _sqa_question(s, rng), seen)
            save_image(root, f"scienceqa/images/test/{pid}/image.png", scene, scenes)
        value = question_block(qa, "sqa")
        entry = {"id": pid, "conversations": [
            {"from": "human", "value": value if scene is None else f"{DEFAULT_IMAGE_TOKEN}\n{value}"},
            {"from": "gpt", "value": qa.answer},
        ]}
        if scene is not None:
            entry["image"] = f"{pid}/image.png"
        entries.append(entry)
        problems[pid] = {
            "question": qa.question,
            "choices": list(qa.options),
            "answer": LETTERS.index(qa.answer),
            "hint": qa.hint,
            "image": None if scene is None else "image.png",
            "task": "closed choice",
            "grade": "grade1",
            "subject": "natural science",
            "topic": "shapes",
            "category": qa.kind,
            "skill": qa.detail or qa.kind,
            "lecture": "",
            "solution": "",
            "split": "test",
        }
        answers[qa.answer] += 1
        chances.append(1 / len(qa.options))
    sqa = root / "scienceqa"
    write_json(sqa / "llava_test_CQM-A.json", entries, indent=2)
    write_json(sqa / "problems.json", problems, indent=2)
    ids = list(problems)
    splits = {"train": [], "val": [], "test": ids, "trainval": [], "minitrain": [], "minival": [], "minitest": ids}
    write_json(sqa / "pid_splits.json", splits)
    return Summary(
        "ScienceQA", ["scienceqa/llava_test_CQM-A.json", "scienceqa/problems.json", "scienceqa/pid_splits.json",
                      "scienceqa/images/test/<id>/image.png"],
        n, answers,
        [f"uniform random letter: {100 * sum(chances) / len(chances):.1f}% (mean of 1/#choices)",
         f"always the most frequent letter: {100 * answers.most_common(1)[0][1] / n:.1f}%"],
        ["llava_test_CQM-A.json: [{id, image = '<id>/image.png' (absent for text-only), conversations: "
         "[{from: human, value: '<image>\\nContext: <hint>\\n<question>\\nA. ...\\nB. ...'}, "
         "{from: gpt, value: <letter>}]}] (no Context line when the hint is empty). problems.json: "
         "{id: {question, choices, answer (index), hint, image, split: test, ...}}; "
         "pid_splits.json: {test: [ids], ...}.",
         f"{n - n_text} image questions, {n_text} text-only questions (no image key, no <image>)."],
        scenes=scenes,
    )
