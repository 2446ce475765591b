"""TextVQA val: questions about text in photos, scored with the official soft VQA accuracy (min(#humans/3, 1))."""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, answers_score


def plan(c: Context) -> list:
    d = c.path("textvqa")
    answers = f"{d}/answers/{c.name}.jsonl"
    return [
        Answer("llava.eval.workers.model_vqa_loader", answers,
               ("--question-file", f"{d}/llava_textvqa_val_v051_ocr.jsonl", "--image-folder", f"{d}/train_images",
                "--is_textvqa")),
        Run("llava.eval.benchmarks.textvqa.scorer",
            ("--annotation-file", f"{d}/TextVQA_0.5.1_val.json", "--result-file", answers)),
    ]


BENCHMARKS = (
    Benchmark(
        name="textvqa", title="TextVQA val", metric="VQA accuracy", folder="textvqa",
        files=("llava_textvqa_val_v051_ocr.jsonl", "TextVQA_0.5.1_val.json", "train_images/<image_id>.jpg"),
        plan=plan,
        score=answers_score("textvqa", "accuracy"),
        sample="llava.eval.benchmarks.textvqa.sample:write_textvqa",
        lmms_task="textvqa_val",
    ),
)
