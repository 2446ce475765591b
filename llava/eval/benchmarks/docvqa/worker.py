r"""DocVQA (Single Page Document VQA) answers, from the official question file as the RRC releases it.

    python -m llava.eval.benchmarks.docvqa.worker --model-path PATH \
        --question-file ./playground/data/eval/docvqa/spdocvqa_qas/val_v1.0_withQT.json \
        --image-folder ./playground/data/eval/docvqa/spdocvqa_images \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags]

The question file (val_v1.0_withQT.json, val_v1.0.json, test_v1.0.json) is {"dataset_name", "dataset_split",
"dataset_version", "data": [{"questionId", "question", "question_types", "image": "documents/<page>.png",
"docId", "ucsf_document_id", "ucsf_document_page_no", "answers", "data_split"}]} (no answers in test). The
`image` field keeps the 2020 release's "documents/" folder; the current download (spdocvqa_images.tar.gz) holds
the pages without it, so an image is <image-folder>/<image> where that file exists, else
<image-folder>/<file name> (both layouts work).

The prompt is lmms-eval's for LLaVA (lmms_eval/tasks/docvqa/_default_template_docvqa_yaml and utils.py:
pre_prompt "" + question + post_prompt "\nAnswer the question using a single word or phrase."), at most 32 new
tokens as there. An answer's `question_id` is the entry's `questionId`; `llava.eval.benchmarks.docvqa.scorer`
scores val by ANLS, `llava.eval.benchmarks.docvqa.convert` writes the test split's RRC submission file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from llava.eval.core.common import Task, main as run_main
from llava.eval.core.prompt_texts import SHORT_ANSWER_PROMPT
from llava.eval.core.questions import ImageRef, Item, QuestionFileError, Row

MAX_NEW_TOKENS = 32  # lmms-eval's generation_kwargs for docvqa and infovqa


def read_rrc_questions(path: str) -> list[Row]:
    """The entries of an RRC question file ({"dataset_name", ..., "data": [...]}: DocVQA's, InfographicVQA's),
    each located as "path: data[i]"."""
    if not os.path.isfile(path):
        raise QuestionFileError(f"question file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except UnicodeDecodeError as exc:
        raise QuestionFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise QuestionFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise QuestionFileError(f"{path}: expected the RRC layout, an object whose 'data' is the list of questions")
    rows = []
    for i, entry in enumerate(content["data"]):
        if not isinstance(entry, dict):
            raise QuestionFileError(f"{path}: data[{i}]: expected a JSON object, got {type(entry).__name__}")
        rows.append(Row(f"{path}: data[{i}]", entry))
    return rows


def question_items(row: Row, image_path: str) -> list[Item]:
    """One item: the question with lmms-eval's post prompt, keyed by `questionId`."""
    text = f"{row.text('question')}\n{SHORT_ANSWER_PROMPT}"
    return [Item({"question_id": row.key("questionId"), "prompt": text}, text, (ImageRef(path=image_path),))]


def page_path(folder: str, image: str) -> str:
    """<folder>/<image> where it exists (the 2020 layout, documents/<page>.png), else <folder>/<file name>."""
    folder = os.path.expanduser(folder)
    as_given = os.path.join(folder, image)
    return as_given if os.path.isfile(as_given) else os.path.join(folder, os.path.basename(image))


def docvqa_items(row: Row, args: argparse.Namespace) -> list[Item]:
    return question_items(row, page_path(args.image_folder, row.text("image")))


TASK = Task(description=__doc__, read_questions=read_rrc_questions, to_items=docvqa_items,
            max_new_tokens=MAX_NEW_TOKENS, num_workers=4)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
