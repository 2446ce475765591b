"""MM-Vet: open questions on integrated capabilities, graded by GPT-4 with MM-Vet's official grader (the script
writes the grader's input)."""

from llava.eval.benchmarks import Answer, Benchmark, Context, MakeDir, Run, Say


def plan(c: Context) -> list:
    d = c.path("mm-vet")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa", answers,
               ("--question-file", f"{d}/llava-mm-vet.jsonl", "--image-folder", f"{d}/images")),
        MakeDir(f"{d}/results"),
        Run("llava.eval.benchmarks.mmvet.convert", ("--src", answers, "--dst", f"{d}/results/{c.name}.json")),
        Say(f"grade {d}/results/{c.name}.json with MM-Vet's GPT-4 grader (https://github.com/yuweihao/MM-Vet)"),
    ]


BENCHMARKS = (
    Benchmark(
        name="mmvet", title="MM-Vet", metric="GPT-4 score (MM-Vet's grader)", folder="mm-vet",
        files=("llava-mm-vet.jsonl", "mm-vet.json", "images/<image>"), plan=plan, score=None,
        sample="llava.eval.benchmarks.short_answer_samples:write_mmvet", lmms_task="mmvet",
    ),
)
