"""SEED-Bench (image part): seed_bench/llava-seed-bench.jsonl, seed_bench/SEED-Bench.json, SEED-Bench-image/."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, write_json, write_jsonl
from llava.data.questions import OPTION_PROMPT, ask_mc, question_block

# question base -> SEED-Bench's image dimension of the same kind
SEED_TYPES = {"color": "Instance Attributes", "shape": "Instance Identity", "count": "Instance Counting",
              "position": "Instance Location", "relation": "Spatial Relation", "background": "Scene Understanding",
              "word": "Text Understanding"}
TYPE_IDS = {name: i + 1 for i, name in enumerate(dict.fromkeys(SEED_TYPES.values()))}


def write_seed(root: Path, seed: int, n: int) -> Summary:
    """n four-option questions, one per image, cycling over SEED's image dimensions."""
    rng, seen, scenes, lines, questions, answers = rng_for(seed, "seed"), set(), {}, [], [], Counter()
    bases = list(SEED_TYPES)
    for k in range(n):
        base = bases[k % len(bases)]
        scene, qa = draw_scene(rng, lambda s: ask_mc(s, rng, base=base, hint=""), seen,
                               **({"with_word": True} if base == "word" else {}))
        name = f"{k:06d}.png"
        save_image(root, f"seed_bench/SEED-Bench-image/{name}", scene, scenes)
        question_id = str(k)
        type_name = SEED_TYPES[base]
        lines.append({"image": f"SEED-Bench-image/{name}", "text": f"{question_block(qa)}\n{OPTION_PROMPT}",
                      "category": type_name, "question_id": question_id})
        questions.append({"question_id": question_id, "question": qa.question, "answer": qa.answer,
                          "question_type_id": TYPE_IDS[type_name], "data_type": "image", "data_id": name,
                          **{f"choice_{letter.lower()}": o for letter, o in zip("ABCD", qa.options)}})
        answers[qa.answer] += 1
    write_jsonl(root / "seed_bench" / "llava-seed-bench.jsonl", lines)
    write_json(root / "seed_bench" / "SEED-Bench.json", {"questions": questions, "question_type": TYPE_IDS})
    return Summary("SEED-Bench", ["seed_bench/llava-seed-bench.jsonl", "seed_bench/SEED-Bench.json",
                                  "seed_bench/SEED-Bench-image/<k>.png"], n, answers,
                   ["25% for a uniform random letter"],
                   ["Image questions only (no video); question types: " + ", ".join(TYPE_IDS)], scenes=scenes)
