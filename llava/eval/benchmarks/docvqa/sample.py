"""DocVQA val sample: docvqa/spdocvqa_qas/val_v1.0_withQT.json and docvqa/spdocvqa_images/<page>.png, as the RRC
download unpacks (the entries' `image` keeps the release's "documents/" prefix, as the real file does).

Pages are held-out tables of WORDS (`llava.data.documents`), two questions each: a cell looked up by its place
("What word is in the top right cell?", DocVQA type table/list) and by its neighbour ("Which word is under CAT?",
table/list and layout). Answers are written as drawn, in capitals.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.data.documents import (DOCUMENT_TYPES, Document, ask_cell, ask_neighbour, drawn_answer, render_document,
                                  sample_document)
from llava.data.layouts.common import Summary, rng_for, write_json
from llava.data.questions import QA
from llava.data.scenes import WORDS
from llava.data.shapes import encode
from llava.eval.core.anls import anls

FOLDER = "docvqa"
QUESTION_FILE = "spdocvqa_qas/val_v1.0_withQT.json"
IMAGE_FOLDER = "spdocvqa_images"
QUESTION_TYPES = {"doc_cell": ["table/list"], "doc_neighbour": ["table/list", "layout"]}
FIRST_QUESTION_ID = 50000  # questionIds are integers, as the real ones


def page_questions(doc: Document, rng: random.Random) -> list[QA]:
    """A cell question, then a neighbour question about another word (a second cell question where no two
    words touch: 4-5 words can sit in a chequer pattern)."""
    first = ask_cell(doc, rng)
    for _ in range(20):
        second = ask_neighbour(doc, rng) or ask_cell(doc, rng)
        if second.answer != first.answer:
            return [first, second]
    return [first]


def draw_page(rng: random.Random, seen: set[str]) -> Document:
    for _ in range(10_000):
        doc = sample_document(rng, split="eval")
        if doc.signature() not in seen:
            seen.add(doc.signature())
            return doc
    raise RuntimeError("could not draw an unused evaluation document")


def best_constant(golds: list[str], candidates: list[str]) -> tuple[str, float]:
    """The constant answer with the highest ANLS over `golds`, and that ANLS in %."""
    scored = [(100 * anls((c, [g]) for g in golds), c) for c in candidates]
    score, answer = max(scored, key=lambda x: (x[0], x[1]))
    return answer, score


def write_docvqa(root: Path, seed: int, n: int) -> Summary:
    """About n questions (two per page) in the official layout under root/docvqa/."""
    rng, seen, pages, entries, answers = rng_for(seed, FOLDER), set(), {}, [], Counter()
    doc_id = 0
    while len(entries) < n:
        doc = draw_page(rng, seen)
        doc_id += 1
        ucsf_id = f"tiny{doc_id:04d}"
        name = f"{ucsf_id}_1.png"
        path = root / FOLDER / IMAGE_FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render_document(doc), "png"))
        pages[f"{FOLDER}/{IMAGE_FOLDER}/{name}"] = doc
        for qa in page_questions(doc, rng)[: n - len(entries)]:
            gold = drawn_answer(qa)
            entries.append({
                "questionId": FIRST_QUESTION_ID + len(entries), "question": qa.question,
                "question_types": QUESTION_TYPES[qa.kind], "image": f"documents/{name}", "docId": doc_id,
                "ucsf_document_id": ucsf_id, "ucsf_document_page_no": "1", "answers": [gold], "data_split": "val",
            })
            answers[gold] += 1
    write_json(root / FOLDER / QUESTION_FILE, {"dataset_name": "docvqa", "dataset_split": "val",
                                               "dataset_version": "1.0", "data": entries}, indent=2)
    constant, chance = best_constant([a for e in entries for a in e["answers"]], list(WORDS))
    return Summary(
        "DocVQA", [f"{FOLDER}/{QUESTION_FILE}", f"{FOLDER}/{IMAGE_FOLDER}/<ucsf_document_id>_1.png"], len(entries),
        answers, [f"the best constant answer ({constant}) scores ANLS {chance:.1f}% (ANLS gives words that share "
                  "letters partial credit: CAKE for CAT scores 0.5)"],
        [f"Pages are 3x3 tables of 4-9 distinct words; questions: {', '.join(DOCUMENT_TYPES)} (one of each per page). "
         "Score: ANLS (llava.eval.benchmarks.docvqa.scorer)."],
        scenes=pages)
