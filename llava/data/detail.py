"""Training conversations on the fine-detail benchmarks' question forms: documents (DocVQA), infographics
(InfoVQA), charts (ChartQA), diagrams (AI2D) and MMStar's multiple choice, each asked with the prompt its
benchmark's worker writes, about images from the "train" split of its generator (the sample sets draw from the
"eval" split, so no training image is a benchmark image).

`write_detail_set(out, seed, n_images, kinds)` writes out/images/detail<seed>/<kind>_<k>.png and
out/llava_tiny_detail.json (LLaVA's conversation format, `<image>` in the first human turn). The tiny models'
cards continue their training on it (scripts/tiny/train_detail.sh).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.data import charts, diagrams, documents
from llava.data.questions import LETTERS
from llava.data.scenes import sample_scene
from llava.data.shapes import render
from llava.eval.benchmarks.mmstar.sample import question_text as mmstar_question_text
from llava.eval.benchmarks.mmstar.worker import mmstar_prompt
from llava.eval.core.prompt_texts import OPTION_PROMPT, SHORT_ANSWER_PROMPT

Turn = tuple[str, str]  # (the user turn as the benchmark's worker writes it, the answer)


def _document(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    page = documents.sample_document(rng, split="train")
    qas = documents.page_qa_pairs(page, rng, k=turns)
    return documents.render_page(page), [(f"{qa.question}\n{SHORT_ANSWER_PROMPT}", documents.drawn_answer(qa))
                                         for qa in qas]


def _infographic(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    page = documents.sample_infographic(rng, split="train")
    qas = documents.page_qa_pairs(page, rng, k=turns)
    return documents.render_page(page), [(f"{qa.question}\n{SHORT_ANSWER_PROMPT}", documents.drawn_answer(qa))
                                         for qa in qas]


def _chart(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    chart = charts.sample_chart(rng, split="train")
    qas = charts.chart_questions(chart, rng, min(turns, len(charts.KINDS)), rng.choice(charts.PHRASINGS))
    return charts.render_chart(chart), [(f"{qa.question}\n{charts.CHART_PROMPT}", qa.answer) for qa in qas]


def options_block(options: tuple[str, ...]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def _diagram(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """AI2D's prompt (the worker's `ai2d_prompt`): question, "A. option" lines, the letter instruction."""
    diagram = diagrams.sample_diagram(rng, split="train")
    made: list[Turn] = []
    for form in rng.sample(sorted(diagrams.DIAGRAM_QUESTIONS), len(diagrams.DIAGRAM_QUESTIONS))[:turns]:
        qa = diagrams.ask_diagram(diagram, rng, form, rng.randrange(4))
        if qa is not None:
            made.append((f"{qa.question}\n{options_block(qa.options)}\n{OPTION_PROMPT}", qa.answer))
    return diagrams.render_diagram(diagram), made


def _mmstar(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """MMStar's prompt (the worker's `mmstar_prompt` of the release's question text with its options inline),
    sub-categories drawn among those asked about the image's kind (a scene, a scene with a word, a diagram)."""
    image_kind = rng.choice(("scene", "word", "diagram"))
    l2s = [l2 for l2, c in diagrams.CAPABILITIES.items()
           if c.image == image_kind or (image_kind == "word" and c.image == "scene")]
    if image_kind == "diagram":
        source = diagrams.sample_diagram(rng, split="train")
        image = diagrams.render_diagram(source)
    else:
        source = sample_scene(rng, split="train", with_word=True if image_kind == "word" else None)
        image = render(source)
    made: list[Turn] = []
    for l2 in rng.sample(l2s, min(turns, len(l2s))):
        qa = diagrams.ask_capability(source, rng, l2, rng.randrange(4))
        if qa is not None:
            made.append((mmstar_prompt(mmstar_question_text(qa.question, qa.options)), qa.answer))
    return image, made


KINDS: dict[str, Callable[[random.Random, int], tuple[Image.Image, list[Turn]]]] = {
    "document": _document, "infographic": _infographic, "chart": _chart, "diagram": _diagram, "mmstar": _mmstar,
}


def detail_record(record_id: str, image: str, turns: list[Turn]) -> dict:
    conversation = []
    for k, (question, answer) in enumerate(turns):
        conversation.append({"from": "human", "value": f"{DEFAULT_IMAGE_TOKEN}\n{question}" if k == 0 else question})
        conversation.append({"from": "gpt", "value": answer})
    return {"id": record_id, "image": image, "conversations": conversation}


def write_detail_set(out: str | Path, seed: int, n_images: int, kinds: list[str], turns: tuple[int, int] = (4, 8),
                     progress: Callable[[int], None] | None = None) -> Path:
    """n_images images, kinds drawn in turn from `kinds` (repeat a kind to weight it), `turns` = (min, max)
    questions each. Deterministic: same arguments, same bytes."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; known: {sorted(KINDS)}")
    out = Path(out)
    folder = out / "images" / f"detail{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for k in range(n_images):
        kind = kinds[k % len(kinds)]
        rng = random.Random(f"detail/{seed}/{k}")
        image, qa_turns = KINDS[kind](rng, rng.randint(*turns))
        if not qa_turns:
            continue
        name = f"images/detail{seed}/{kind}_{k:06d}.png"
        image.save(out / name)
        records.append(detail_record(f"detail{seed}_{k}", name, qa_turns))
        if progress:
            progress(k)
    path = out / "llava_tiny_detail.json"
    path.write_text(json.dumps(records))
    return path
