"""OCRBench: OCRBench/OCRBench.json (a JSON list) and OCRBench_Images/<dataset>/<image>."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, write_json
from llava.data.questions import WORD_QUESTION, ask_color, ask_count, ask_shape

# (OCRBench question type, source dataset, what the sample asks): recognition of the written word, and
# questions about the scene around it, as OCRBench's scene-text VQA part asks about text-bearing photos.
SAMPLE_KINDS = (
    ("Regular Text Recognition", "IIIT5K", "word"),
    ("Scene Text-centric VQA", "STVQA", "scene"),
)
SCENE_ASKS = (ask_color, ask_shape, ask_count)


def write_ocrbench(root: Path, seed: int, n: int) -> Summary:
    """n questions, one per image, every image with a word; answers are a string or a list (both occur in
    OCRBench.json), recognition answers in capitals as IIIT5K's."""
    rng, seen, scenes, entries, answers = rng_for(seed, "ocrbench"), set(), {}, [], Counter()
    for k in range(n):
        type_name, dataset, kind = SAMPLE_KINDS[k % len(SAMPLE_KINDS)]
        if kind == "word":
            scene, (question, answer) = draw_scene(
                rng, lambda s: (WORD_QUESTION, s.word.text), seen, with_word=True)
        else:
            scene, qa = draw_scene(rng, lambda s: rng.choice(SCENE_ASKS)(s, rng), seen, with_word=True)
            question, answer = qa.question, [qa.answer]
        image_path = f"{dataset}/{k:05d}.jpg"
        save_image(root, f"OCRBench/OCRBench_Images/{image_path}", scene, scenes)
        entries.append({"dataset_name": dataset, "id": k, "image_path": image_path, "question": question,
                        "answers": answer, "type": type_name})
        answers[answer if isinstance(answer, str) else answer[0]] += 1
    write_json(root / "OCRBench" / "OCRBench" / "OCRBench.json", entries, indent=4)
    return Summary("OCRBench", ["OCRBench/OCRBench/OCRBench.json", "OCRBench/OCRBench_Images/<dataset>/<k>.jpg"],
                   n, answers, ["a constant answer is right only where it occurs in the answer text"],
                   ["Entries as OCRBench.json: {dataset_name, id, image_path, question, answers (a string or a list), "
                    "type}; types: " + ", ".join(t for t, _, _ in SAMPLE_KINDS) + " (the real set has ten)."],
                   scenes=scenes)
