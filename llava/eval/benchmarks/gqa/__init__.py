"""GQA testdev-balanced: compositional questions on scene graphs, scored by GQA's official eval.py (accuracy)."""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, read_score

SPLIT = "llava_gqa_testdev_balanced"


def plan(c: Context) -> list:
    d = c.path("gqa")
    answers = f"{d}/answers/{SPLIT}/{c.name}/merge.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa_loader", answers,
               ("--question-file", f"{d}/{SPLIT}.jsonl", "--image-folder", f"{d}/data/images")),
        Run("llava.eval.benchmarks.gqa.convert",
            ("--src", answers, "--dst", f"{d}/data/predictions/{c.name}/testdev_balanced_predictions.json")),
        # Predictions and score per run name (the official tool reads <tier>_predictions.json from its data dir;
        # a shared file would let one run's score overwrite another's).
        Run("llava.eval.benchmarks.gqa.scorer",
            ("--data-dir", f"{d}/data", "--tier", "testdev_balanced",
             "--predictions", f"predictions/{c.name}/{{tier}}_predictions.json")),
    ]


BENCHMARKS = (
    Benchmark(
        name="gqa", title="GQA testdev-balanced", metric="accuracy", folder="gqa",
        files=(f"{SPLIT}.jsonl", "data/testdev_balanced_questions.json", "data/images/<imageId>.jpg"),
        plan=plan,
        score=lambda data, name: read_score(
            data / "gqa" / "data" / "predictions" / name / "testdev_balanced_predictions.score.json", "accuracy"),
        sample="llava.eval.benchmarks.gqa.sample:write_gqa", lmms_task="gqa",
    ),
)
