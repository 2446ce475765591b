"""VQAv2 test-dev: open questions on COCO images; scored on the EvalAI server (the script writes the upload file
over the full test2015 question list, as the server requires)."""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, Say

SPLIT = "llava_vqav2_mscoco_test-dev2015"


def plan(c: Context) -> list:
    d = c.path("vqav2")
    return [
        Answer("llava.eval.workers.model_vqa_loader", f"{d}/answers/{SPLIT}/{c.name}/merge.jsonl",
               ("--question-file", f"{d}/{SPLIT}.jsonl", "--image-folder", f"{d}/test2015")),
        Run("llava.eval.benchmarks.vqav2.convert", ("--dir", d, "--split", SPLIT, "--ckpt", c.name)),
        Say(f"upload {d}/answers_upload/{SPLIT}/{c.name}.json to the VQA Challenge on EvalAI "
            "(https://eval.ai, test-dev phase)"),
    ]


BENCHMARKS = (
    Benchmark(
        name="vqav2", title="VQAv2 test-dev", metric="VQA accuracy (EvalAI server)", folder="vqav2",
        files=(f"{SPLIT}.jsonl", "llava_vqav2_mscoco_test2015.jsonl", "test2015/COCO_test2015_*.jpg"),
        plan=plan, score=None,
        sample="llava.eval.benchmarks.short_answer_samples:write_vqav2", lmms_task="vqav2_test",
    ),
)
