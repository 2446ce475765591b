"""MME: MME/llava_mme.jsonl and MME/MME_Benchmark_release_version/<category>/<image>.jpg + <image>.txt."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, save_image, unique_name, write_jsonl, yes_no_pair
from llava.data.questions import SHORT_ANSWER_PROMPT, ask_exist, ask_verify
from llava.data.scenes import Scene

MME_SUFFIX = " Please answer yes or no."

MME_CATEGORIES = ("existence", "count", "position", "color", "OCR")


def _mme_pair(category: str, scene: Scene, rng: random.Random):
    if category == "existence":
        return yes_no_pair(ask_exist, scene, rng, ending=" in this image")
    detail = {"count": "count", "position": "relation", "color": "color", "OCR": "word"}[category]
    return yes_no_pair(ask_verify, scene, rng, detail=detail)


def write_mme(root: Path, seed: int, n: int) -> Summary:
    """n // 10 images per category, each with a yes and a no question (so acc+ is meaningful).

    Layout as the official release: <category>/<image>.jpg next to <image>.txt holding
    "<question> Please answer yes or no.\\t<Yes|No>" lines. llava_mme.jsonl asks the question with LLaVA's
    short-answer instruction instead; convert_answer_to_mme.py maps it back to the .txt line.
    """
    rng, seen, scenes = rng_for(seed, "mme"), set(), {}
    base = root / "MME" / "MME_Benchmark_release_version"
    lines, answers, names = [], Counter(), set()
    for category in MME_CATEGORIES:
        for k in range(max(1, n // 10)):
            kwargs = {"with_word": True} if category == "OCR" else {"with_word": False}
            if category == "position":
                kwargs["n_shapes"] = rng.randint(2, 4)
            scene, (yes, no) = draw_scene(rng, lambda s: _mme_pair(category, s, rng), seen, **kwargs)
            name = f"{k + 1:04d}.jpg" if category == "OCR" else unique_name(rng, names, "{:012d}.jpg", 6)
            save_image(root, f"MME/MME_Benchmark_release_version/{category}/{name}", scene, scenes)
            txt = "".join(f"{qa.question}{MME_SUFFIX}\t{qa.answer.capitalize()}\n" for qa in (yes, no))
            (base / category / name.replace(".jpg", ".txt")).write_text(txt)
            for qa in (yes, no):
                lines.append({"question_id": f"{category}/{name}", "image": f"{category}/{name}",
                              "text": f"{qa.question}\n{SHORT_ANSWER_PROMPT}", "category": category})
                answers[qa.answer] += 1
    write_jsonl(root / "MME" / "llava_mme.jsonl", lines)
    per = max(1, n // 10)
    return Summary(
        "MME", ["MME/llava_mme.jsonl", "MME/MME_Benchmark_release_version/<category>/<name>.jpg + <name>.txt"],
        len(lines), answers,
        ["per category: acc 50%, acc+ 25% for uniform random answers, so score = acc + acc+ = 75 of 200",
         "constant answer: acc 50%, acc+ 0%, score 50; total chance over the 5 categories ~375 of 1000"],
        ["Question lines: {question_id = image = '<category>/<name>.jpg', text = question + "
         "'\\nAnswer the question using a single word or phrase.', category}. <name>.txt: "
         "'<question> Please answer yes or no.<TAB>Yes|No', the yes line first.",
         f"categories {', '.join(MME_CATEGORIES)}; {per} images x 2 questions each (one Yes, one No)"],
        scenes=scenes,
    )
