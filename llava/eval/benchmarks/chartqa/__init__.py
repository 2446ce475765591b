"""ChartQA (test): questions about charts that need reading values off them, in two sets of 1,250 each:
"human" (written by people, often visual and arithmetic) and "augmented" (generated from chart summaries).
The score is relaxed accuracy (a number within 5% of a numeric gold, otherwise an exact match ignoring case):
per set, and their mean, which papers report as "ChartQA" (the record's score).

Official sources: the release vis-nlp/ChartQA ("ChartQA Dataset/test/test_human.json", "test_augmented.json",
"png/"; also as "ChartQA Dataset.zip" in the Hugging Face dataset ahmed-masry/ChartQA), the rule of
google-research/pix2struct (pix2struct/metrics.py, relaxed_correctness) and lmms-eval's task
(lmms_eval/tasks/chartqa/: chartqa.yaml for the prompt, utils.py for the rule and the per-set metrics).

Under DATA_ROOT the release sits unchanged in chartqa/ (note the space in its folder name: the plan's words are
shell-quoted), e.g.
    mkdir -p chartqa && cd chartqa
    wget "https://huggingface.co/datasets/ahmed-masry/ChartQA/resolve/main/ChartQA%20Dataset.zip"
    unzip "ChartQA Dataset.zip"        # -> chartqa/ChartQA Dataset/{train,val,test}/
or `git clone https://github.com/vis-nlp/ChartQA chartqa` (the same folder inside the repository).
"""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score

FOLDER = "chartqa"
TEST = "ChartQA Dataset/test"  # = layout.TEST_FOLDER (not imported: records import no benchmark code)


def plan(c: Context) -> list:
    d = c.path(FOLDER)
    test, answers = f"{d}/{TEST}", f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.benchmarks.chartqa.worker", answers,
               ("--question-file", test, "--image-folder", f"{test}/png")),
        Run("llava.eval.benchmarks.chartqa.scorer", ("--annotations", test, "--result-file", answers)),
    ]


BENCHMARKS = (
    Benchmark(
        name="chartqa", title="ChartQA test", metric="relaxed accuracy, mean of the human and augmented sets",
        folder=FOLDER,
        files=(f"{TEST}/test_human.json", f"{TEST}/test_augmented.json", f"{TEST}/png/<imgname>"),
        plan=plan,
        score=answers_score(FOLDER, "overall"),
        sample="llava.eval.benchmarks.chartqa.sample:write_chartqa",
        lmms_task="chartqa",
    ),
)
