"""Training conversations on the fine-detail benchmarks' question forms: documents (DocVQA), infographics
(InfoVQA), charts (ChartQA), diagrams (AI2D) and MMStar's multiple choice, each asked with the prompt its
benchmark's worker writes, about images from the "train" split of its generator (the sample sets draw from the
"eval" split, so no training image is a benchmark image).

`write_detail_set(out, seed, n_images, kinds)` writes out/images/detail<seed>/<kind>_<k>.png and
out/llava_tiny_detail.json (LLaVA's conversation format, `<image>` in the first human turn). The tiny models'
cards continue their training on it (scripts/tiny/train_detail.sh). `write_described_detail_set` writes the same
kinds of pages described in words instead of drawn (documents, infographics, charts): text-only conversations
for a text stage.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.data import charts, diagrams, documents, numbers
from llava.data.questions import LETTERS
from llava.data.scenes import sample_scene
from llava.data.shapes import render
from llava.eval.benchmarks.mmstar.sample import question_text as mmstar_question_text
from llava.eval.benchmarks.mmstar.worker import mmstar_prompt
from llava.eval.core.prompt_texts import OPTION_PROMPT, SHORT_ANSWER_PROMPT

Turn = tuple[str, str]  # (the user turn as the benchmark's worker writes it, the answer)


def _page_turns(page: documents.Page, rng: random.Random, turns: int, types: tuple[str, ...] | None = None
                ) -> list[Turn]:
    return [(f"{qa.question}\n{SHORT_ANSWER_PROMPT}", documents.drawn_answer(qa))
            for qa in documents.page_qa_pairs(page, rng, types, k=turns)]


def _chart_turns(chart: charts.Chart, rng: random.Random, turns: int) -> list[Turn]:
    qas = charts.chart_questions(chart, rng, min(turns, len(charts.KINDS)), rng.choice(charts.PHRASINGS))
    return [(f"{qa.question}\n{charts.CHART_PROMPT}", qa.answer) for qa in qas]


VALUE_KINDS = ("color_value", "label_value")  # the questions a chart_digits chart is asked


def _value_turns(chart: charts.Chart, rng: random.Random, turns: int, kinds: tuple[str, ...],
                 once_per_bar: bool = False) -> list[Turn]:
    """Up to `turns` questions about `chart`, each of a kind drawn from `kinds`: distinct questions, or with
    `once_per_bar` one per bar (values are distinct), so that no answer can be copied from an earlier turn."""
    made, asked = [], set()
    for kind in [rng.choice(kinds) for _ in range(turns)]:
        qa = charts.ask_chart(chart, rng, kind, rng.choice(charts.PHRASINGS))
        key = qa.answer if once_per_bar else qa.question
        if key not in asked:
            asked.add(key)
            made.append((f"{qa.question}\n{charts.CHART_PROMPT}", qa.answer))
    return made


def _chart_digits(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """A values-style chart whose bars stand at heights unrelated to the digits written above them, asked only
    for values: the digits are the one way to answer, where a real chart's heights also give the value
    approximately (what the tiny models learnt instead of reading: docs/tiny_model_history.md, "Round 3")."""
    chart = charts.sample_chart(rng, split="train", style="values")
    heights = tuple(rng.sample(charts.VALUES, len(chart.bars)))
    return charts.render_chart(chart, heights), _value_turns(chart, rng, turns, VALUE_KINDS)


def _chart_values(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """A chart of either style asked only for values (a named bar's, the largest), each bar's once: the forms
    chart questions are answered worst on, each turn binding a bar found by colour, label or height to its value."""
    chart = charts.sample_chart(rng, split="train")
    return charts.render_chart(chart), _value_turns(chart, rng, turns, VALUE_KINDS + ("max_value",), once_per_bar=True)


def _bar_values(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """A values-style chart asked every bar's value by its colour, in random order, in one of ChartQA's two
    wordings (`turns` is not used): the binding of ChartQA's value questions that needs no word read, from a
    bar's colour to the digits above it."""
    chart = charts.sample_chart(rng, split="train", style="values")
    template = rng.choice(charts.TEMPLATES["color_value"])
    return charts.render_chart(chart), [(f"{template.format(color=bar.color)}\n{charts.CHART_PROMPT}", str(bar.value))
                                        for bar in rng.sample(chart.bars, len(chart.bars))]


# Training-only forms (not ChartQA's templates) that bind a bar to the word under it, beside ChartQA's own
# "tallest_label": the form the candidates answer worst after values (docs/tiny_model_history.md, "Round 6").
LABEL_OF_BAR = "What is the label of the {color} bar?"
LOWEST_LABEL = "Which label has the lowest value?"


def _chart_labels(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """A chart of either style asked which word sits under a bar: the tallest's (ChartQA's form), the shortest's,
    then bars named by colour until `turns`, each bar's label asked once; answers in lower case as ChartQA's."""
    chart = charts.sample_chart(rng, split="train")
    tallest = charts.ask_chart(chart, rng, "tallest_label", rng.choice(charts.PHRASINGS))
    asked = [(tallest.question, tallest.answer), (LOWEST_LABEL, chart.shortest().label.lower())]
    others = [b for b in chart.bars if b not in (chart.tallest(), chart.shortest())]
    asked += [(LABEL_OF_BAR.format(color=b.color), b.label.lower()) for b in rng.sample(others, len(others))]
    return charts.render_chart(chart), [(f"{q}\n{charts.CHART_PROMPT}", a) for q, a in asked[:max(turns, 1)]]


def _numbers(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """1-4 numbers written as a chart writes a bar's value, each asked for by its place, then the highest (one
    question per number: `turns` is not used): reading two digits, before finding them over a bar."""
    written = numbers.sample_numbers(rng)
    return numbers.render_numbers(written), numbers.number_turns(written, rng)


def _number_pair(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """Exactly two numbers, each asked for by its place, then the higher (`turns` is not used): the first
    binding of digits to a place, learnt on such pages alone where pages of 1-4 numbers did not teach it
    (docs/tiny_model_history.md, "Round 9")."""
    written = numbers.sample_numbers(rng, count=2)
    return numbers.render_numbers(written), numbers.number_turns(written, rng)


def _digits(rng: random.Random, turns: int) -> tuple[Image.Image, list[Turn]]:
    """One number asked its first digit, its last digit and itself (three questions: `turns` is not used)."""
    written = numbers.sample_number(rng)
    return numbers.render_numbers(written), numbers.digit_turns(written, rng)


def _legend_turns(page: documents.Infographic, rng: random.Random, turns: int) -> list[Turn]:
    return _page_turns(page, rng, turns, documents.LEGEND_TYPES)


def _page_kind(sample: Callable, show: Callable, ask: Callable) -> Callable[[random.Random, int], tuple]:
    """A kind of page: (rng, turns) -> (the "train"-split page shown by `show`, `turns` questions about it)."""
    def make(rng: random.Random, turns: int) -> tuple:
        page = sample(rng, split="train")
        return show(page), ask(page, rng, turns)
    return make


_document = _page_kind(documents.sample_document, documents.render_page, _page_turns)
_infographic = _page_kind(documents.sample_infographic, documents.render_page, _page_turns)
_chart = _page_kind(charts.sample_chart, charts.render_chart, _chart_turns)
_infographic_legend = _page_kind(documents.sample_infographic, documents.render_page, _legend_turns)


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
    "chart_digits": _chart_digits, "chart_values": _chart_values, "infographic_legend": _infographic_legend,
    "numbers": _numbers, "chart_labels": _chart_labels, "digits": _digits, "number_pair": _number_pair,
    "bar_values": _bar_values,
}


# ------------------------------------------------------------------------------------ the same pages in words
# A text stage before an image stage is what carried the scene world's relations over to images
# (docs/tiny_model_history.md): the language model first learns "which word is under CAT?" from a listing of
# the page, then only has to learn to read that listing off the image tokens.


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_document(doc: documents.Document) -> str:
    """"a table with CAT in the top left cell and DOG in the center cell." (filled cells in reading order)."""
    return f"a table with {_listing([f'{w.text} in the {documents.CELL_NAMES[w.cell]} cell' for w in doc.words])}."


def describe_infographic(info: documents.Infographic) -> str:
    """"a legend: a red star next to CAT and an orange circle next to DOG; also a green square, on a white
    background." (legend entries top to bottom, then the loose shapes)."""
    labelled = [f"{_a(shape.color)} {shape.kind} next to {word.text}" for shape, word in info.labelled()]
    in_legend = {shape.cell for shape, _ in info.labelled()}
    loose = [f"{_a(s.color)} {s.kind}" for s in info.shapes if s.cell not in in_legend]
    also = f"; also {_listing(loose)}" if loose else ""
    return f"a legend: {_listing(labelled)}{also}, on a {info.background} background."


def describe_chart(chart: charts.Chart) -> str:
    """"a bar chart with 3 bars, from left to right: a red bar for CAT at 45, ... and a blue bar for DOG at 70."
    (the values as the data has them, whether the chart writes them or only has an axis)."""
    bars = [f"{_a(b.color)} bar for {b.label} at {b.value}" for b in chart.bars]
    return f"a bar chart with {len(bars)} bars, from left to right: {_listing(bars)}."


DESCRIBED_KINDS: dict[str, Callable[[random.Random, int], tuple[str, list[Turn]]]] = {
    "document": _page_kind(documents.sample_document, describe_document, _page_turns),
    "infographic": _page_kind(documents.sample_infographic, describe_infographic, _page_turns),
    "chart": _page_kind(charts.sample_chart, describe_chart, _chart_turns),
}


def _conversation(turns: list[Turn], lead: str) -> list[dict]:
    """LLaVA's turns, `lead` (the image token, or the page in words) opening the first human turn."""
    conversation = []
    for k, (question, answer) in enumerate(turns):
        conversation.append({"from": "human", "value": f"{lead}\n{question}" if k == 0 else question})
        conversation.append({"from": "gpt", "value": answer})
    return conversation


def detail_record(record_id: str, image: str, turns: list[Turn]) -> dict:
    return {"id": record_id, "image": image, "conversations": _conversation(turns, DEFAULT_IMAGE_TOKEN)}


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


def described_record(record_id: str, description: str, turns: list[Turn]) -> dict:
    """A text-only conversation: "The image shows <description>" leads the first human turn, where the image
    would be (the scene world's described scenes, `llava.data.synthetic.described_conversation`)."""
    return {"id": record_id, "conversations": _conversation(turns, f"The image shows {description}")}


def write_described_detail_set(out: str | Path, seed: int, n: int, kinds: list[str], turns: tuple[int, int] = (4, 8),
                               progress: Callable[[int], None] | None = None) -> Path:
    """n text-only conversations about pages described in words (`DESCRIBED_KINDS`, drawn in turn from `kinds`),
    written to out/llava_tiny_detail_described.json. Their pages come from another random stream than
    `write_detail_set`'s images of the same seed. Deterministic."""
    unknown = sorted(set(kinds) - set(DESCRIBED_KINDS))
    if unknown:
        raise ValueError(f"kinds without a description {unknown}; described: {sorted(DESCRIBED_KINDS)}")
    records = []
    for k in range(n):
        kind = kinds[k % len(kinds)]
        rng = random.Random(f"described-detail/{seed}/{k}")
        description, qa_turns = DESCRIBED_KINDS[kind](rng, rng.randint(*turns))
        if qa_turns:
            records.append(described_record(f"described{seed}_{kind}_{k}", description, qa_turns))
        if progress:
            progress(k)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "llava_tiny_detail_described.json"
    path.write_text(json.dumps(records))
    return path
