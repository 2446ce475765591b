"""Video-MME: multiple choice about videos (short / medium / long), the official accuracy by duration, domain and
task type. Needs a family that takes videos (e.g. CKPT=Qwen/Qwen2-VL-7B-Instruct); the LLaVA default does not."""

import os

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("videomme")
    # The release's parquet where it was downloaded, else its rows as JSON (the generated sample set).
    questions = f"{d}/videomme/test-00000-of-00001.parquet"
    if not os.path.isfile(questions):
        questions = f"{d}/videomme/test.json"
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.benchmarks.videomme.worker", answers,
               ("--question-file", questions, "--video-folder", f"{d}/data")),
        Run("llava.eval.benchmarks.videomme.scorer",
            ("--question-file", questions, "--result-file", answers,
             "--output-file", f"{d}/results/{c.name}_videomme.json")),
    ]


BENCHMARKS = (
    Benchmark(
        name="videomme", title="Video-MME", metric="accuracy over the answers with a letter (official)",
        folder="videomme", files=("videomme/test-00000-of-00001.parquet", "data/<videoID>.mp4"),
        plan=plan,
        score=answers_score("videomme", "accuracy"),
        sample="llava.eval.benchmarks.videomme.sample:write_videomme", takes_video=True, lmms_task="videomme",
    ),
)
