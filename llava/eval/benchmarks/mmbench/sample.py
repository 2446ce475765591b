"""MMBench: mmbench/mmbench_dev_20230712.tsv (and MMBench-CN's mmbench_cn/mmbench_dev_cn_20231003.tsv),
images embedded as base64, circular groups of rotated options."""

from __future__ import annotations

import base64
import csv
import io
from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for
from llava.data.questions import HINTS, LETTERS, ask_mc
from llava.data.shapes import encode, render

MMBENCH_CATEGORIES = {  # question base -> (category, l2-category) as named in the real dev set
    "color": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "shape": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "position": ("object_localization", "finegrained_perception (instance-level)"),
    "word": ("ocr", "finegrained_perception (instance-level)"),
    "relation": ("spatial_relationship", "finegrained_perception (cross-instance)"),
    "background": ("image_scene", "coarse_perception"),
}
MMBENCH_COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
                   "l2-category", "comment", "split")
CIRCULAR_OFFSET = 1_000_000


def write_mmbench(root: Path, seed: int, n: int, folder: str = "mmbench", split: str = "mmbench_dev_20230712",
                  name: str = "MMBench") -> Summary:
    """n // 4 four-option questions, each in 4 circular rows: row k has the options rotated by k and
    index = base index + k * 1e6, as the real dev set's circular groups."""
    rng, seen, scenes = rng_for(seed, folder), set(), {}
    rows, answers, categories = [], Counter(), Counter()
    bases = sorted(MMBENCH_CATEGORIES)
    for k in range(max(1, n // 4)):
        base = bases[k % len(bases)]
        hint = HINTS[2] if base == "relation" else ""
        scene, qa = draw_scene(
            rng, lambda s: ask_mc(s, rng, base=base, hint=hint), seen,
            **({"with_word": True} if base == "word" else {}),
        )
        image = base64.b64encode(encode(render(scene), "png")).decode()
        scenes[f"{folder}/{split}.tsv#{k}"] = scene
        category, l2 = MMBENCH_CATEGORIES[base]
        for r in range(4):
            options = qa.options[r:] + qa.options[:r]
            answer = LETTERS[options.index(qa.answer_text)]
            rows.append([k + r * CIRCULAR_OFFSET, qa.question, hint, *options, answer, category, image,
                         "synthetic", l2, "", "dev"])
            answers[answer] += 1
        categories[category] += 4
    path = root / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(MMBENCH_COLUMNS)
    writer.writerows(rows)
    path.write_text(buf.getvalue())
    groups = len(rows) // 4
    return Summary(
        name, [f"{folder}/{split}.tsv"], len(rows), answers,
        ["per row: 25% for a uniform random letter; 'always A' also 25% (each group puts the answer at "
         "every letter once)",
         "circular (a group counts only if all 4 rotations are right): 1/256 = 0.4% for random letters, "
         "0% for any constant letter"],
        ["Columns: " + ", ".join(MMBENCH_COLUMNS) + "; hint empty except for spatial questions.",
         f"{groups} questions x 4 rotations; images embedded as base64 PNG; categories: "
         + ", ".join(f"{c} ({v} rows)" for c, v in sorted(categories.items()))],
        scenes=scenes,
    )


def write_mmbench_cn(root: Path, seed: int, n: int) -> Summary:
    """MMBench-CN's layout and prompt (the scripts ask in Chinese); the generated questions stay English,
    the only language the tiny model's tokenizer has."""
    return write_mmbench(root, seed, n, folder="mmbench_cn", split="mmbench_dev_cn_20231003", name="MMBench-CN")
