"""MME: yes/no questions in 14 subtasks (10 perception, 4 cognition), scored by the official
calculation (accuracy + accuracy+ per subtask, summed)."""

import json
import statistics
from pathlib import Path

from llava.eval.benchmarks import Answer, Benchmark, Context, Run


def plan(c: Context) -> list:
    d = c.path("MME")
    return [
        Answer("llava.eval.workers.model_vqa_loader", f"{d}/answers/{c.name}.jsonl",
               ("--question-file", f"{d}/llava_mme.jsonl", "--image-folder", f"{d}/MME_Benchmark_release_version")),
        Run("llava.eval.benchmarks.mme.convert", ("--data-dir", d, "--experiment", c.name)),
        Run("llava.eval.benchmarks.mme.scorer", ("--results_dir", f"{d}/eval_tool/answers/{c.name}")),
    ]


def score(data: Path, name: str) -> float:
    """The perception subtasks' mean accuracy (in %, so that it compares with the other benchmarks)."""
    path = data / "MME" / "eval_tool" / "answers" / name / "mme_score.json"
    if not path.is_file():
        raise FileNotFoundError(f"the scorer wrote no {path}")
    subtasks = json.loads(path.read_text())["perception"]["subtasks"]
    return 100 * statistics.mean(s["acc"] for s in subtasks.values())


BENCHMARKS = (
    Benchmark(
        name="mme", title="MME", metric="perception accuracy, mean of the subtasks", folder="MME",
        files=("llava_mme.jsonl", "MME_Benchmark_release_version/<subtask>/<image> + <image>.txt"),
        plan=plan, score=score, sample="llava.eval.benchmarks.mme.sample:write_mme", lmms_task="mme",
    ),
)
