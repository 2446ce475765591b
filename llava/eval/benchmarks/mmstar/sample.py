"""MMStar: MMStar/mmstar.parquet, the release's one file (images embedded), written with pyarrow.

Rows as the release's: index, question (options inline: "...?\\nOptions: A: x, B: y, C: z, D: w"), image
{bytes, path}, answer (the letter), category, l2_category, meta_info {source, split, image_path}; the schema
carries the hub's `datasets` feature metadata, so that `datasets` (lmms-eval) reads `image` as an image. Questions
cycle through MMStar's 18 sub-categories (`llava.data.diagrams.CAPABILITIES`: the scene world's question forms
under MMStar's names; the diagram ones ask about `llava.data.diagrams` diagrams), so the six core capabilities
get equal shares, and their answers through A-D.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from llava.data.diagrams import CAPABILITIES, ask_capability, draw_diagram, render_diagram
from llava.data.layouts.common import Summary, draw_scene, rng_for
from llava.data.questions import LETTERS
from llava.data.shapes import encode, render

SOURCE = "synthetic"  # meta_info.source: the benchmark a real question was taken from (MMBench, MathVista, ...)
_STRING = {"dtype": "string", "_type": "Value"}
HF_FEATURES = {  # the `datasets` features of the release's parquet, as its dataset card lists them
    "index": {"dtype": "int64", "_type": "Value"}, "question": _STRING, "image": {"_type": "Image"},
    "answer": _STRING, "category": _STRING, "l2_category": _STRING,
    "meta_info": {"source": _STRING, "split": _STRING, "image_path": _STRING},
}


def question_text(question: str, options: tuple[str, ...]) -> str:
    return f"{question}\nOptions: " + ", ".join(f"{LETTERS[i]}: {o}" for i, o in enumerate(options))


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, image = pa.string(), pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("index", pa.int64()), ("question", text), ("image", image), ("answer", text),
                        ("category", text), ("l2_category", text),
                        ("meta_info", pa.struct([("source", text), ("split", text), ("image_path", text)]))],
                       metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def write_mmstar(root: Path, seed: int, n: int) -> Summary:
    rng, seen, scenes = rng_for(seed, "mmstar"), set(), {}
    rows, answers, categories = [], Counter(), Counter()
    l2s = list(CAPABILITIES)
    for k in range(n):
        l2, position = l2s[k % len(l2s)], k % 4
        capability = CAPABILITIES[l2]
        if capability.image == "diagram":
            diagram, qa = draw_diagram(rng, lambda d: ask_capability(d, rng, l2, position), seen)
            scene, image = diagram.scene, render_diagram(diagram)
        else:
            scene, qa = draw_scene(rng, lambda s: ask_capability(s, rng, l2, position), seen,
                                   **({"with_word": True} if capability.image == "word" else {}))
            image = render(scene)
        rows.append({"index": k, "question": question_text(qa.question, qa.options),
                     "image": {"bytes": encode(image, "png"), "path": f"{k}.png"}, "answer": qa.answer,
                     "category": capability.category, "l2_category": l2,
                     "meta_info": {"source": SOURCE, "split": "val", "image_path": f"images/{k}.png"}})
        scenes[f"MMStar/mmstar.parquet#{k}"] = scene
        answers[qa.answer] += 1
        categories[capability.category] += 1
    write_parquet(root / "MMStar" / "mmstar.parquet", rows)
    return Summary(
        "MMStar", ["MMStar/mmstar.parquet"], n, answers,
        ["25% for a uniform random letter or any constant letter (answers cycle through A-D)"],
        ["Columns: index, question (options inline), image {bytes, path} (PNG), answer, category, l2_category, "
         "meta_info; sub-categories in turn, all 18 of MMStar's names; categories: "
         + ", ".join(f"{c} ({v})" for c, v in categories.items()),
         "Diagram reasoning and electronics & energy ask about arrow diagrams, the rest about scenes."],
        scenes=scenes,
    )
