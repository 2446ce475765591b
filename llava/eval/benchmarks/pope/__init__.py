"""POPE: yes/no questions on whether an object is in a COCO image, in three splits (adversarial, popular, random);
accuracy, precision, recall and F1 per split."""

import json
import statistics
from pathlib import Path

from llava.eval.benchmarks import Answer, Benchmark, Context, Run


def plan(c: Context) -> list:
    d = c.path("pope")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa_loader", answers,
               ("--question-file", f"{d}/llava_pope_test.jsonl", "--image-folder", f"{d}/val2014")),
        Run("llava.eval.benchmarks.pope.scorer",
            ("--annotation-dir", f"{d}/coco", "--question-file", f"{d}/llava_pope_test.jsonl", "--result-file", answers)),
    ]


def score(data: Path, name: str) -> float:
    """The mean accuracy of the splits answered (the DART paper's POPE column)."""
    path = data / "pope" / "answers" / f"{name}.score.json"
    if not path.is_file():
        raise FileNotFoundError(f"the scorer wrote no {path}")
    categories = json.loads(path.read_text())["categories"].values()
    return 100 * statistics.mean(c["accuracy"] for c in categories if c["samples"])


BENCHMARKS = (
    Benchmark(
        name="pope", title="POPE", metric="accuracy, mean of the 3 splits", folder="pope",
        files=("llava_pope_test.jsonl", "coco/coco_pope_{adversarial,popular,random}.json", "val2014/COCO_val2014_*.jpg"),
        plan=plan, score=score, sample="llava.eval.benchmarks.pope.sample:write_pope", lmms_task="pope",
    ),
)
