"""DocVQA val (Single Page Document VQA, RRC challenge 17 task 1): 5,349 questions on 1,286 scanned pages of
industry documents, answered with a span of their text; the score is ANLS (0-1; here in %).

Official sources: the RRC downloads (https://rrc.cvc.uab.es/?ch=17&com=downloads): spdocvqa_qas.zip unpacks to
spdocvqa_qas/ with train_v1.0_withQT.json, val_v1.0_withQT.json and test_v1.0.json (the RRC layout:
{"dataset_name", "dataset_split", "dataset_version", "data": [...]}); spdocvqa_images.tar.gz holds the page
images, which go in spdocvqa_images/ (the entries' `image` says "documents/<page>.png", the 2020 release's
folder: the worker takes spdocvqa_images/<page>.png or spdocvqa_images/documents/<page>.png). ANLS as the RRC's evaluation script computes it (`llava.eval.core.anls`). lmms-eval runs the
same benchmark as `docvqa_val` (the Hub dataset lmms-lab/DocVQA, config DocVQA, split validation; moved to
lmms-lab-encoder/DocVQA in 2026) with the prompt the worker uses.

DOCVQA_SPLIT=test answers test_v1.0.json instead (its answers are not public) and writes the RRC submission
file to upload; the test ANLS comes from the RRC server.
"""

from llava.eval.benchmarks import Answer, Benchmark, Context, Run, Say, answers_score

FOLDER = "docvqa"
QUESTION_FILES = {"val": "spdocvqa_qas/val_v1.0_withQT.json", "test": "spdocvqa_qas/test_v1.0.json"}
IMAGES = "spdocvqa_images"
RRC = "https://rrc.cvc.uab.es/?ch=17"


def rrc_plan(c: Context, folder: str, split: str, question_files: dict, images: str, package: str, task: str
             ) -> list:
    """val: answer, then score by ANLS; test: answer, then write the RRC submission file and say where it goes.
    Shared by DocVQA and InfographicVQA (same server, same file layouts)."""
    if split not in question_files:
        raise ValueError(f"unknown split {split!r} for {folder}; known: {', '.join(question_files)}")
    d = c.path(folder)
    questions = f"{d}/{question_files[split]}"
    ask = ("--question-file", questions, "--image-folder", f"{d}/{images}")
    if split == "val":
        answers = f"{d}/answers/{c.name}.jsonl"
        return [Answer(f"{package}.worker", answers, ask),
                Run(f"{package}.scorer", ("--annotation-file", questions, "--result-file", answers))]
    answers, upload = f"{d}/answers_test/{c.name}.jsonl", f"{d}/answers_upload/{c.name}.json"
    return [Answer(f"{package}.worker", answers, ask),
            Run("llava.eval.benchmarks.docvqa.convert",
                ("--question-file", questions, "--result-file", answers, "--output-file", upload)),
            Say(f"submit {upload} at {RRC} (My Methods, {task}) for the test ANLS")]


def plan(c: Context) -> list:
    return rrc_plan(c, FOLDER, c.env.get("DOCVQA_SPLIT", "val"), QUESTION_FILES, IMAGES,
                    "llava.eval.benchmarks.docvqa", "Task 1 - Single Page Document VQA")


BENCHMARKS = (
    Benchmark(
        name="docvqa", title="DocVQA val", metric="ANLS", folder=FOLDER,
        files=(QUESTION_FILES["val"], f"{IMAGES}/<ucsf_document_id>_<page>.png"),
        plan=plan,
        score=answers_score(FOLDER, "score"),
        sample="llava.eval.benchmarks.docvqa.sample:write_docvqa",
        lmms_task="docvqa_val",
    ),
)
