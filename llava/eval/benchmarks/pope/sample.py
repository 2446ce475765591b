"""POPE: pope/llava_pope_test.jsonl, pope/coco/coco_pope_<category>.json, pope/val2014/COCO_val2014_*.jpg."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, unique_name, write_jsonl
from llava.data.questions import SHORT_ANSWER_PROMPT, absent_objects
from llava.data.scenes import COLORS, KINDS, Scene

POPE_CATEGORIES = ("adversarial", "popular", "random")


def _pope_negative(scene: Scene, category: str, rng: random.Random, popularity: list) -> tuple[str, str]:
    absent = absent_objects(scene)
    if category == "random":
        return rng.choice(absent)
    if category == "popular":  # the most frequent objects of the whole set that this image lacks
        return min(absent, key=popularity.index)
    # adversarial: objects that share the most attributes with what is in the image ("co-occurring")
    def overlap(o):
        return sum((s.color == o[0]) + (s.kind == o[1]) for s in scene.shapes)
    best = max(overlap(o) for o in absent)
    return rng.choice([o for o in absent if overlap(o) == best])


def write_pope(root: Path, seed: int, n: int) -> Summary:
    """n // 6 images shared by the three categories; per image and category one yes and one no question."""
    rng, seen, scenes = rng_for(seed, "pope"), set(), {}
    images, names = [], set()
    for _ in range(max(1, n // 6)):
        scene, _ = draw_scene(rng, lambda s: True, seen, n_shapes=rng.randint(2, 4), with_word=False)
        name = unique_name(rng, names, "COCO_val2014_{:012d}.jpg", 6)
        images.append((name, scene))
        save_image(root, f"pope/val2014/{name}", scene, scenes)
    counts = Counter((s.color, s.kind) for _, scene in images for s in scene.shapes)
    all_objects = [(c, k) for c in COLORS for k in KINDS]
    popularity = sorted(all_objects, key=lambda o: (-counts[o], all_objects.index(o)))
    questions, qid, answers = [], 1, Counter()
    for category in POPE_CATEGORIES:
        labels = []
        for j, (name, scene) in enumerate(images):
            positive = scene.shapes[(POPE_CATEGORIES.index(category) + j) % len(scene.shapes)]
            negative = _pope_negative(scene, category, rng, popularity)
            for obj, label in (((positive.color, positive.kind), "yes"), (negative, "no")):
                text = f"Is there a {obj[0]} {obj[1]} in the image?"
                assert ("yes" if scene.has(*obj) else "no") == label
                labels.append({"question_id": qid, "image": name, "text": text, "label": label})
                answers[label] += 1
                questions.append({"question_id": qid, "image": name,
                                  "text": f"{text}\n{SHORT_ANSWER_PROMPT}", "category": category})
                qid += 1
        # eval_pope zips a category's answers (in question-file order) with these lines: same order.
        write_jsonl(root / "pope" / "coco" / f"coco_pope_{category}.json", labels)
    write_jsonl(root / "pope" / "llava_pope_test.jsonl", questions)
    per_cat = len(questions) // 3
    return Summary(
        "POPE", ["pope/llava_pope_test.jsonl", "pope/coco/coco_pope_{adversarial,popular,random}.json",
                 "pope/val2014/COCO_val2014_<12 digits>.jpg"],
        len(questions), answers,
        ["accuracy 50% for any constant or random answer (yes ratio is exactly 0.5 per category)",
         "F1: always-yes 66.7%, always-no 0%, uniform random ~50%"],
        ["Question lines: {question_id, image, text = 'Is there a <color> <shape> in the image?' + "
         "'\\nAnswer the question using a single word or phrase.', category}. Label files: one JSON object per "
         "line {question_id, image, text, label: yes|no}, in the question file's order within the category.",
         f"{per_cat} questions per category over the same {len(images)} images; per image and category one "
         "object present (yes) and one absent (no). Negatives: random = any absent coloured shape; popular = "
         "the absent object most frequent in the whole set; adversarial = the absent object sharing most "
         "colours/kinds with the shapes present."],
        scenes=scenes,
    )
