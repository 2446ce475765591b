"""ScienceQA-IMG test: multiple-choice science questions (text-only ones answered too, as LLaVA does); accuracy."""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("scienceqa")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.benchmarks.scienceqa.worker", answers,
               ("--question-file", f"{d}/llava_test_CQM-A.json", "--image-folder", f"{d}/images/test",
                "--single-pred-prompt")),
        Run("llava.eval.benchmarks.scienceqa.scorer",
            ("--base-dir", d, "--result-file", answers, "--output-file", f"{d}/answers/{c.name}_output.jsonl",
             "--output-result", f"{d}/answers/{c.name}_result.json")),
    ]


BENCHMARKS = (
    Benchmark(
        name="sqa", title="ScienceQA-IMG test", metric="accuracy", folder="scienceqa",
        files=("llava_test_CQM-A.json", "problems.json", "pid_splits.json", "images/test/<id>/image.png"),
        plan=plan,
        score=answers_score("scienceqa", "accuracy"),
        sample="llava.eval.benchmarks.scienceqa.sample:write_scienceqa", lmms_task="scienceqa_img",
    ),
)
