"""VizWiz-VQA test: questions from blind people's photos; scored on the EvalAI server (the script writes the
upload file)."""

from llava.eval.benchmarks import Answer, Benchmark, Context, MakeDir, Run, Say


def plan(c: Context) -> list:
    d = c.path("vizwiz")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa_loader", answers,
               ("--question-file", f"{d}/llava_test.jsonl", "--image-folder", f"{d}/test")),
        MakeDir(f"{d}/answers_upload"),
        Run("llava.eval.benchmarks.vizwiz.convert",
            ("--annotation-file", f"{d}/llava_test.jsonl", "--result-file", answers,
             "--result-upload-file", f"{d}/answers_upload/{c.name}.json")),
        Say(f"upload {d}/answers_upload/{c.name}.json to the VizWiz VQA Challenge on EvalAI (https://eval.ai)"),
    ]


BENCHMARKS = (
    Benchmark(
        name="vizwiz", title="VizWiz-VQA test", metric="VQA accuracy (EvalAI server)", folder="vizwiz",
        files=("llava_test.jsonl", "test/<image>.jpg"), plan=plan, score=None,
        sample="llava.eval.benchmarks.short_answer_samples:write_vizwiz", lmms_task="vizwiz_vqa_test",
    ),
)
