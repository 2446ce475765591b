"""Q-Bench A1 (LLVisionQA): qbench/llvisionqa_dev.json (a JSON list) and qbench/images_llvisionqa/<image>."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, write_json
from llava.data.questions import ask_exist, ask_mc, keep_options

# LLVisionQA's `type`: 0 yes-or-no, 1 how, 2 what; `concern` 0-3: global distortion, global other,
# in-context distortion, in-context other. The sample asks about the scene (it has no distorted photos),
# with each question form of the real set: yes/no with the candidates ["Yes", "No"], "how many" with
# three candidates, "what" with four.
QUESTION_FORMS = ((0, "yes/no"), (1, "count"), (2, "what"))


def write_qbench(root: Path, seed: int, n: int) -> Summary:
    """n questions, one per image, cycling over the question types and (separately) the concerns."""
    rng, seen, scenes, entries, answers = rng_for(seed, "qbench"), set(), {}, [], Counter()
    for k in range(n):
        type_id, form = QUESTION_FORMS[k % len(QUESTION_FORMS)]
        if form == "yes/no":
            scene, qa = draw_scene(rng, lambda s: ask_exist(s, rng, want=rng.random() < 0.5, ending=""), seen)
            question, candidates, correct = qa.question, ["Yes", "No"], qa.answer.capitalize()
        else:
            base = "count" if form == "count" else rng.choice(("color", "shape", "position"))
            scene, qa = draw_scene(rng, lambda s: ask_mc(s, rng, base=base, hint=""), seen)
            if form == "count":
                qa = keep_options(qa, 3, rng)
            question, candidates, correct = qa.question, list(qa.options), qa.answer_text
        name = f"{k:05d}.jpg"
        save_image(root, f"qbench/images_llvisionqa/{name}", scene, scenes)
        entries.append({"img_path": name, "question": question, "candidates": candidates, "correct_ans": correct,
                        "type": type_id, "concern": k % 4})
        answers[correct] += 1
    write_json(root / "qbench" / "llvisionqa_dev.json", entries, indent=4)
    chance = sum(1 / len(e["candidates"]) for e in entries) / len(entries)
    return Summary("Q-Bench (LLVisionQA dev)", ["qbench/llvisionqa_dev.json", "qbench/images_llvisionqa/<k>.jpg"],
                   n, answers, [f"{100 * chance:.1f}% for a uniform random candidate"],
                   ["Entries as llvisionqa_dev.json: {img_path, question, candidates, correct_ans, type, concern}; "
                    "scripts/v1_5/eval/qbench_zh.sh reads the same file with the Chinese instruction."],
                   scenes=scenes)
