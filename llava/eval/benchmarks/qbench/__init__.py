"""Q-Bench A1 (LLVisionQA): low-level perception questions; dev accuracy per question type and concern, and the
answers file for Q-Bench's authors (SPLIT=test: its answers are not public). Q-Bench-zh asks the same questions
with the Chinese instruction."""

import functools

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, read_score


def plan(c: Context, lang: str) -> list:
    d = c.path("qbench")
    split = c.env.get("SPLIT", "dev")
    run = f"llvisionqa_{split}" if lang == "en" else f"llvisionqa_{lang}_{split}"
    answers = f"{d}/answers/{run}/{c.name}.jsonl"
    questions = f"{d}/llvisionqa_{split}.json"
    return [
        Answer("llava.eval.benchmarks.qbench.worker", answers,
               ("--questions-file", questions, "--image-folder", f"{d}/images_llvisionqa/", "--lang", lang)),
        Run("llava.eval.benchmarks.qbench.scorer",
            ("--questions-file", questions, "--result-file", answers,
             "--submission-file", f"{d}/{run}_{c.name}_answers.jsonl")),
    ]


def record(name: str, title: str, lang: str, run: str):
    return Benchmark(
        name=name, title=title, metric="accuracy", folder="qbench",
        files=("llvisionqa_dev.json", "images_llvisionqa/<image>"),
        plan=functools.partial(plan, lang=lang),
        score=lambda data, name: read_score(data / "qbench" / "answers" / run / f"{name}.score.json", "accuracy"),
        sample="llava.eval.benchmarks.qbench.sample:write_qbench", lmms_task="qbench_dev" if lang == "en" else None,
    )


BENCHMARKS = (
    record("qbench", "Q-Bench A1 dev", "en", "llvisionqa_dev"),
    record("qbench_zh", "Q-Bench-zh A1 dev", "zh", "llvisionqa_zh_dev"),
)
