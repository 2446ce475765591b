"""InfographicVQA val sample: infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json and
infovqa/infographicsvqa_images/<n>.jpeg, as the RRC download unpacks.

Images are held-out legends of shapes and WORDS (`llava.data.documents`), three questions each: the word next
to a shape ("What word is next to the red star?", answer type "image span"), a count over the page ("How many
stars are there?", operation "counting") and the colour or kind of the shape next to a word ("What color is
the shape next to CAT?"). Words are written as drawn, in capitals.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.data.documents import (INFOGRAPHIC_TYPES, Infographic, ask_label, ask_label_color, ask_label_shape,
                                  ask_shape_count, drawn_answer, render_infographic, sample_infographic)
from llava.data.layouts.common import Summary, rng_for, write_json
from llava.data.questions import QA
from llava.data.scenes import COLORS, KINDS, WORDS
from llava.data.shapes import encode
from llava.eval.benchmarks.docvqa.sample import best_constant

FOLDER = "infovqa"
QUESTION_FILE = "infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json"
IMAGE_FOLDER = "infographicsvqa_images"
VISUAL = "photo/pciture/visual_objects"  # (sic) the official evidence type's name
# QA kind -> (answer_type, evidence, operation/reasoning), in the official type names.
QUESTION_TYPES = {
    "info_label": (["image span"], ["textual", VISUAL], []),
    "info_color": (["non span"], [VISUAL], []),
    "info_shape": (["non span"], [VISUAL], []),
    "info_count": (["non span"], [VISUAL], ["counting"]),
}
FIRST_QUESTION_ID = 90000  # questionIds are integers, as the real ones
FIRST_IMAGE = 10000  # image names are numbers, as the real ones (37313.jpeg)


def page_questions(info: Infographic, rng: random.Random, k: int) -> list[QA]:
    """The word next to a shape, a count, then the colour (even pages) or kind (odd pages) of a labelled shape."""
    third = ask_label_color if k % 2 == 0 else ask_label_shape
    return [ask_label(info, rng), ask_shape_count(info, rng), third(info, rng)]


def draw_page(rng: random.Random, seen: set[str]) -> Infographic:
    for _ in range(10_000):
        info = sample_infographic(rng, split="eval")
        if info.signature() not in seen:
            seen.add(info.signature())
            return info
    raise RuntimeError("could not draw an unused evaluation infographic")


def write_infovqa(root: Path, seed: int, n: int) -> Summary:
    """About n questions (three per image) in the official layout under root/infovqa/."""
    rng, seen, pages, entries, answers = rng_for(seed, FOLDER), set(), {}, [], Counter()
    k = 0
    while len(entries) < n:
        info = draw_page(rng, seen)
        stem = str(FIRST_IMAGE + k)
        name = f"{stem}.jpeg"
        path = root / FOLDER / IMAGE_FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render_infographic(info), "jpeg"))
        pages[f"{FOLDER}/{IMAGE_FOLDER}/{name}"] = info
        for qa in page_questions(info, rng, k)[: n - len(entries)]:
            gold = drawn_answer(qa)
            answer_type, evidence, operation = QUESTION_TYPES[qa.kind]
            entries.append({
                "questionId": FIRST_QUESTION_ID + len(entries), "question": qa.question, "image_local_name": name,
                "image_url": f"https://synthetic.invalid/infographicsvqa/{name}", "ocr_output_file": f"{stem}.json",
                "answers": [gold], "data_split": "val", "answer_type": answer_type, "evidence": evidence,
                "operation/reasoning": operation,
            })
            answers[gold] += 1
        k += 1
    write_json(root / FOLDER / QUESTION_FILE, {"dataset_name": "infographicVQA", "dataset_version": "1.0",
                                               "dataset_split": "val", "data": entries}, indent=2)
    candidates = list(WORDS) + list(COLORS) + list(KINDS) + [str(i) for i in range(7)]
    constant, chance = best_constant([a for e in entries for a in e["answers"]], candidates)
    return Summary(
        "InfographicVQA", [f"{FOLDER}/{QUESTION_FILE}", f"{FOLDER}/{IMAGE_FOLDER}/<n>.jpeg"], len(entries), answers,
        [f"the best constant answer ({constant}) scores ANLS {chance:.1f}%"],
        [f"Images are legends of 2-3 shapes with a word each, and loose shapes; questions: "
         f"{', '.join(INFOGRAPHIC_TYPES)} (three per image). No OCR files are written (ocr_output_file names them "
         "as the real file does). Score: ANLS (llava.eval.benchmarks.infovqa.scorer)."],
        scenes=pages)
