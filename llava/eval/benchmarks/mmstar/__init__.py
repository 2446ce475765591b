"""MMStar ("Are We on the Right Way for Evaluating Large Vision-Language Models?"): 1,500 vision-indispensable
multiple-choice questions, 250 for each of six core capabilities (coarse perception, fine-grained perception,
instance reasoning, logical reasoning, science & technology, math), three sub-categories each. The score is
lmms-eval's `average`: the mean accuracy (%) of the 18 sub-categories; the scorer also writes MMStar's own
accuracy over questions and per category / sub-category.

Files as released: mmstar.parquet of the hub dataset Lin-Chen/MMStar (what `datasets` and lmms-eval load; the
repository's MMStar.tsv is not read). Sources: MMStar-Benchmark/MMStar eval/ (its scoring, mmstar.py) and
lmms-eval's lmms_eval/tasks/mmstar/ (prompt, aggregation). Multi-modal gain / leakage are left out (they need
runs without images); not circular (see scorer.py).
"""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("MMStar")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.benchmarks.mmstar.worker", answers, ("--question-file", f"{d}/mmstar.parquet")),
        Run("llava.eval.benchmarks.mmstar.scorer",
            ("--question-file", f"{d}/mmstar.parquet", "--result-file", answers)),
    ]


BENCHMARKS = (
    Benchmark(
        name="mmstar", title="MMStar", metric="accuracy (%): mean of the 18 sub-categories", folder="MMStar",
        files=("mmstar.parquet",),
        plan=plan,
        score=answers_score("MMStar", "average"),
        sample="llava.eval.benchmarks.mmstar.sample:write_mmstar",
        lmms_task="mmstar",
    ),
)
