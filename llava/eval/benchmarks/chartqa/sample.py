"""ChartQA: chartqa/ChartQA Dataset/test/test_{human,augmented}.json and .../test/png/<imgname>.

Held-out bar charts (`llava.data.charts`, "eval" split) in the release's layout: half the questions in the human
set (ChartQA's human wordings), half in the augmented set (one template per kind), two questions a chart, every
chart in one set only (as ChartQA's human and augmented charts come from different sources).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llava.data.charts import KINDS, chart_questions, render_chart, sample_chart
from llava.data.layouts.common import Summary, rng_for, unique_name, write_json
from llava.data.shapes import encode
from llava.eval.benchmarks.chartqa.layout import SETS, TEST_FOLDER

QUESTIONS_PER_CHART = 2
# Image names in the style of the release: the human set's charts are numbered ("8127.png"), the augmented
# set's come from Statista tables ("two_col_100878.png": a label column and a value column).
IMAGE_NAMES = {"human": ("{}.png", 5), "augmented": ("two_col_{}.png", 6)}


def write_chartqa(root: Path, seed: int, n: int) -> Summary:
    """About n questions, the human set first ((n + 1) // 2 of them). The human file is written on one line,
    the augmented one indented with tabs, as the release writes them."""
    rng, folder = rng_for(seed, "chartqa"), root / "chartqa" / TEST_FOLDER
    seen, names, answers, charts = set(), set(), Counter(), {}
    for question_set, count in zip(SETS, ((n + 1) // 2, n // 2)):
        entries = []
        while len(entries) < count:
            chart = sample_chart(rng, split="eval")
            if chart.signature() in seen:
                continue
            seen.add(chart.signature())
            name = unique_name(rng, names, *IMAGE_NAMES[question_set])
            (folder / "png").mkdir(parents=True, exist_ok=True)
            (folder / "png" / name).write_bytes(encode(render_chart(chart), "png"))
            charts[f"chartqa/{TEST_FOLDER}/png/{name}"] = chart
            for qa in chart_questions(chart, rng, min(QUESTIONS_PER_CHART, count - len(entries)), question_set):
                entries.append({"imgname": name, "query": qa.question, "label": qa.answer})
                answers[qa.answer] += 1
        write_json(folder / f"test_{question_set}.json", entries, indent="\t" if question_set == "augmented" else None)
    return Summary(
        "ChartQA", [f"chartqa/{TEST_FOLDER}/test_human.json", f"chartqa/{TEST_FOLDER}/test_augmented.json",
                    f"chartqa/{TEST_FOLDER}/png/<imgname>"],
        n, answers,
        ["relaxed accuracy: a count is right 1 time in 3 by chance (2-4 bars), a colour or label 1 time in 2-4, "
         "Yes / No 1 time in 2; a value (10-95 in steps of 5) 1 time in 18, as 5% of it never reaches the next one"],
        ["Entries as test_human.json / test_augmented.json: {imgname, query, label}, labels as strings; question "
         f"kinds: {', '.join(KINDS)}. Images are bar charts (llava.data.charts); SYNTHETIC_SCENES.jsonl "
         "holds each chart's bars."],
        scenes=charts)
