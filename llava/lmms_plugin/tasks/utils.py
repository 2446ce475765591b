"""Offline sample tasks for lmms-eval on the generated data under `playground/data/eval` (POPE- and MME-style),
scored by our implementations of the official rules (`llava.eval.benchmarks.pope.scorer`, `llava.eval.benchmarks.mme.scorer`), so
an lmms-eval run and our own worker + scorer give the same numbers on the same questions.

Paths are relative to the repository root (run lmms-eval from there) unless `LLAVA_DART_EVAL_DATA` names the
`playground/data/eval` directory elsewhere.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from PIL import Image

from llava.eval.benchmarks.mme.scorer import score_mme
from llava.eval.benchmarks.mme.convert import convert, load_ground_truth
from llava.eval.benchmarks.pope.scorer import load_label_files, parse_yes_no, pope_metrics

DATA = Path(os.environ.get("LLAVA_DART_EVAL_DATA", "playground/data/eval"))
POPE, MME = DATA / "pope", DATA / "MME"


def doc_to_text(doc):
    """The question as our workers ask it (the sample files carry the short-answer instruction already)."""
    return doc["text"]


def _open(path: Path):
    with Image.open(path) as image:
        return [image.convert("RGB")]


# -- POPE ------------------------------------------------------------------------------------------------


def pope_docs(dataset):
    """Each question with its label from `coco/coco_pope_<category>.json` (matched by question_id and text)."""
    labels = {category: {row["question_id"]: row for row in rows}
              for category, rows in load_label_files(str(POPE / "coco")).items()}

    def label(doc):
        row = labels[doc["category"]].get(doc["question_id"])
        if row is None or row["text"].split("\n")[0] != doc["text"].split("\n")[0]:
            raise ValueError(f"POPE question {doc['question_id']} ({doc['category']}) has no label")
        return {"answer": row["label"]}

    return dataset.map(label)


def pope_doc_to_visual(doc):
    return _open(POPE / "val2014" / doc["image"])


def pope_process_results(doc, results):
    record = {"category": doc["category"], "pred": parse_yes_no(results[0]), "label": doc["answer"]}
    return {name: record for name in ("pope_accuracy", "pope_f1", "pope_yes_ratio")}


def _pope_mean(results, metric: str) -> float:
    """LLaVA-1.5's POPE number: the metric per category, averaged over the categories present."""
    by_category = defaultdict(list)
    for result in results:
        by_category[result["category"]].append(result)
    scores = [pope_metrics([r["pred"] for r in rows], [r["label"] for r in rows])[metric]
              for rows in by_category.values()]
    return sum(scores) / len(scores)


def pope_accuracy(results):
    return _pope_mean(results, "accuracy")


def pope_f1(results):
    return _pope_mean(results, "f1")


def pope_yes_ratio(results):
    return _pope_mean(results, "yes_ratio")


# -- MME -------------------------------------------------------------------------------------------------


def mme_doc_to_visual(doc):
    return _open(MME / "MME_Benchmark_release_version" / doc["image"])


def mme_process_results(doc, results):
    return {"mme_perception_score": {"question_id": doc["question_id"], "prompt": doc["text"], "text": results[0]}}


def mme_perception(results):
    """The official perception score (acc + acc+ per subtask, x 100, summed) over the subtasks present (the
    sample data has perception subtasks only)."""
    gt = load_ground_truth(str(MME / "MME_Benchmark_release_version"))
    return score_mme(convert(results, gt))["perception"]["total"]
