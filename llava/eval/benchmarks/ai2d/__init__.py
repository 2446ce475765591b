"""AI2D (allenai's "A Diagram Is Worth A Dozen Images"): multiple-choice questions about science diagrams; the
score is the accuracy (%) on the test split (3,088 questions), by lmms-eval's `ai2d` rule.

Files as released: ai2d-all.zip's ai2d/ (questions/<image>.json, images/, abc_images/) and ai2d_test_ids.csv
(the test image ids, downloaded separately) put beside questions/. Sources: the release's layout as read by
big_vision's and InternVL's AI2D converters; the prompt, the answer extraction and the metric from lmms-eval's
lmms_eval/tasks/ai2d/ (ai2d.yaml, utils.py), which reads the questions from lmms-lab/ai2d on the hub (built,
as its upload_ai2d.py says, from the release's question files for the question ids of Qwen-VL's AI2D test.jsonl;
that these are exactly the questions of ai2d_test_ids.csv's images is taken, not checked here). Not circular:
each question once, as lmms-eval asks it (see worker.py).
"""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("ai2d")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.benchmarks.ai2d.worker", answers,
               ("--question-file", f"{d}/ai2d_test_ids.csv", "--image-folder", d)),
        Run("llava.eval.benchmarks.ai2d.scorer",
            ("--question-file", f"{d}/ai2d_test_ids.csv", "--result-file", answers)),
    ]


BENCHMARKS = (
    Benchmark(
        name="ai2d", title="AI2D test", metric="accuracy (%)", folder="ai2d",
        files=("ai2d_test_ids.csv", "questions/<image>.json", "images/<image>", "abc_images/<image>"),
        plan=plan,
        score=answers_score("ai2d", "accuracy"),
        sample="llava.eval.benchmarks.ai2d.sample:write_ai2d",
        lmms_task="ai2d",
    ),
)
