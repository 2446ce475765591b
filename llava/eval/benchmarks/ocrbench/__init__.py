"""OCRBench: 1000 questions over ten text-recognition tasks; the score is right answers out of 1000."""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("OCRBench")
    return [
        Answer("llava.eval.benchmarks.ocrbench.worker", f"{d}/answers/{c.name}.jsonl",
               ("--question-file", f"{d}/OCRBench/OCRBench.json", "--image-folder", f"{d}/OCRBench_Images")),
        Run("llava.eval.benchmarks.ocrbench.scorer",
            ("--annotation-file", f"{d}/OCRBench/OCRBench.json", "--result-file", f"{d}/answers/{c.name}.jsonl",
             "--output-file", f"{d}/results/{c.name}_OCRBench.json")),
    ]


BENCHMARKS = (
    Benchmark(
        name="ocrbench", title="OCRBench", metric="accuracy: score / questions", folder="OCRBench",
        files=("OCRBench/OCRBench.json", "OCRBench_Images/<dataset>/<image>"),
        plan=plan,
        score=answers_score("OCRBench", "accuracy"),
        sample="llava.eval.benchmarks.ocrbench.sample:write_ocrbench",
        lmms_task="ocrbench",
    ),
)
