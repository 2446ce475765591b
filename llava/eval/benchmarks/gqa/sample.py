"""GQA: gqa/llava_gqa_testdev_balanced.jsonl, gqa/data/testdev_balanced_questions.json, gqa/data/images/."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, unique_name, write_json, write_jsonl
from llava.data.questions import (
    QA, SHORT_ANSWER_PROMPT, ask_choose, ask_color, ask_exist, ask_relation, ask_shape, ask_verify,
)
from llava.data.scenes import Scene

class GqaKind(NamedTuple):
    ask: Callable[..., QA | None]
    structural: str  # GQA's types.structural: query / choose / verify
    semantic: str  # types.semantic: attr / cat / rel / obj
    detailed: str
    group: str | None  # groups.global (eval.py's distribution metric groups answers by it)
    program: tuple[tuple[str, str], ...]  # "semantic": (operation, argument) steps


GQA_KINDS = {
    "color": GqaKind(ask_color, "query", "attr", "queryAttr", "color", (("select", "object"), ("query", "color"))),
    "shape": GqaKind(ask_shape, "query", "cat", "queryObject", "shape", (("select", "object"), ("query", "name"))),
    "relation": GqaKind(ask_relation, "query", "rel", "positionQuery", "position",
                        (("select", "object"), ("relate", "object"), ("query", "position"))),
    "choose": GqaKind(ask_choose, "choose", "attr", "chooseAttr", "color", (("select", "object"), ("choose", "attr"))),
    "exist": GqaKind(ask_exist, "verify", "obj", "exist", None, (("select", "object"), ("exist", ""))),
    "verify": GqaKind(ask_verify, "verify", "rel", "verifyRelation", None,
                      (("select", "object"), ("relate", "object"), ("exist", ""))),
}


def _gqa_questions(scene: Scene, kinds: list[str], rng: random.Random, yes_first: bool):
    """One question per kind, or None; verify questions alternate yes / no starting with `yes_first`."""
    out, want = [], yes_first
    for kind in kinds:
        if kind == "exist":
            qa = ask_exist(scene, rng, want=want, ending="")
        elif kind == "verify":
            qa = ask_verify(scene, rng, want=want, detail="relation")
        else:
            qa = GQA_KINDS[kind].ask(scene, rng)
        if qa is None:
            return None
        if GQA_KINDS[kind].structural == "verify":
            want = not want
        out.append((kind, qa))
    return out


def _gqa_entry(qid: str, qa: QA, kind: GqaKind, image_id: str, name: str) -> dict:
    ops = [
        {"operation": op, "dependencies": list(range(i)), "argument": arg} for i, (op, arg) in enumerate(kind.program)
    ]
    return {
        "semantic": ops,
        "entailed": [],
        "equivalent": [qid],
        "question": qa.question,
        "imageId": image_id,
        "isBalanced": True,
        "groups": {"global": kind.group, "local": f"{kind.structural}-{name}"},
        "answer": qa.answer,
        "semanticStr": " ".join(f"{o['operation']}: {o['argument']}" for o in ops),
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
        "types": {"detailed": kind.detailed, "semantic": kind.semantic, "structural": kind.structural},
        "fullAnswer": qa.answer.capitalize() + ".",
    }


def write_gqa(root: Path, seed: int, n: int) -> Summary:
    """n // 3 images with 3 questions each of different kinds (query, choose, yes/no verify; verify answers
    alternate yes / no over the whole set). Question ids are digit strings, image ids "n" + 6 digits."""
    rng, seen, scenes = rng_for(seed, "gqa"), set(), {}
    lines, questions, answers, image_ids = [], {}, Counter(), set()
    by_structure = {"verify": Counter(), "choose": Counter(), "query": Counter()}
    for _ in range(max(1, n // 3)):
        kinds = rng.sample(sorted(GQA_KINDS), 3)
        yes_first = sum(by_structure["verify"].values()) % 2 == 0
        scene, made = draw_scene(
            rng, lambda s: _gqa_questions(s, kinds, rng, yes_first), seen, n_shapes=rng.randint(2, 4), with_word=False
        )
        image_id = unique_name(rng, image_ids, "n{:06d}", 6)
        save_image(root, f"gqa/data/images/{image_id}.jpg", scene, scenes)
        for name, qa in made:
            qid = str(20_000_001 + len(questions))
            questions[qid] = _gqa_entry(qid, qa, GQA_KINDS[name], image_id, name)
            text = f"{qa.question}\n{SHORT_ANSWER_PROMPT}"
            lines.append({"question_id": qid, "image": f"{image_id}.jpg", "text": text})
            answers[qa.answer] += 1
            by_structure[GQA_KINDS[name].structural][qa.answer] += 1
    write_jsonl(root / "gqa" / "llava_gqa_testdev_balanced.jsonl", lines)
    write_json(root / "gqa" / "data" / "testdev_balanced_questions.json", questions)
    n_verify, n_choose = (sum(by_structure[t].values()) for t in ("verify", "choose"))
    query = by_structure["query"]
    n_query, top_query = sum(query.values()), (query.most_common(1)[0][1] if query else 0)
    return Summary(
        "GQA", ["gqa/llava_gqa_testdev_balanced.jsonl", "gqa/data/testdev_balanced_questions.json",
                "gqa/data/images/<imageId>.jpg"],
        len(lines), answers,
        [f"verify (yes/no) questions ({n_verify}): 50%, yes and no alternate",
         f"choose questions ({n_choose}): 50% (one of two named candidates)",
         f"query questions ({n_query}): most frequent answer {100 * top_query / max(1, n_query):.1f}%",
         f"overall, a blind guesser ('yes', either candidate, the most frequent query answer): "
         f"{100 * (n_verify / 2 + n_choose / 2 + top_query) / len(lines):.1f}% expected"],
        ["Question lines: {question_id (str), image = '<imageId>.jpg', text = question + "
         "'\\nAnswer the question using a single word or phrase.'}. Questions file: {qid: {question, imageId, "
         "answer, fullAnswer, isBalanced, types: {structural, semantic, detailed}, groups: {global, local}, "
         "semantic, semanticStr, entailed, equivalent, annotations}}.",
         "Scored by GQA's eval.py (exact match after convert_gqa_for_eval lower-cases and strips '.')."],
        scenes=scenes,
    )
