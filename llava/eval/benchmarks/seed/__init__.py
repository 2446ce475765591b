"""SEED-Bench (image part): multiple choice in 9 dimensions; accuracy per question type, and the upload file."""

from llava.eval.benchmarks import Answer, Benchmark, Context, MakeDir, Run, read_score


def plan(c: Context) -> list:
    d = c.path("seed_bench")
    answers = f"{d}/answers/{c.name}/merge.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa_loader", answers,
               ("--question-file", f"{d}/llava-seed-bench.jsonl", "--image-folder", d)),
        MakeDir(f"{d}/answers_upload"),
        Run("llava.eval.benchmarks.seed.convert",
            ("--annotation-file", f"{d}/SEED-Bench.json", "--result-file", answers,
             "--result-upload-file", f"{d}/answers_upload/{c.name}.jsonl")),
    ]


BENCHMARKS = (
    Benchmark(
        name="seed", title="SEED-Bench (image)", metric="accuracy", folder="seed_bench",
        files=("llava-seed-bench.jsonl", "SEED-Bench.json", "SEED-Bench-image/<id>.png"),
        plan=plan,
        score=lambda data, name: read_score(data / "seed_bench" / "answers" / name / "merge.score.json", "accuracy"),
        sample="llava.eval.benchmarks.seed.sample:write_seed", lmms_task="seedbench",
    ),
)
