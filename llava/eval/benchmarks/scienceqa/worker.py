r"""ScienceQA answers (LLaVA's llava_test_CQM-A.json: a JSON list; questions with and without an image).

    python -m llava.eval.benchmarks.scienceqa.worker --model-path PATH \
        --question-file ./playground/data/eval/scienceqa/llava_test_CQM-A.json \
        --image-folder ./playground/data/eval/scienceqa/images/test \
        --answers-file A.jsonl --single-pred-prompt --temperature 0 --conv-mode vicuna_v1 [DART flags]

Entries: {"id", "conversations": [{"from": "human", "value": "<image>\nContext: ..."}, ...], "image"?}.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, QuestionFileError, Row, read_json_list

SINGLE_PRED_PROMPT = "Answer with the option's letter from the given choices directly."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--single-pred-prompt", action="store_true", help=f'append "{SINGLE_PRED_PROMPT}"')


def science_items(row: Row, args: argparse.Namespace) -> list[Item]:
    """The first (human) turn without its <image> tag; the recorded prompt marks image questions with
    "<image>\\n" in front, as LLaVA's does (the scorer does not read it)."""
    row.require("id", "conversations")
    question_id = row.key("id")
    try:
        question = row.data["conversations"][0]["value"]
    except (IndexError, KeyError, TypeError):
        raise QuestionFileError(f"{row.location}: conversations[0].value is missing") from None
    if not isinstance(question, str):
        raise QuestionFileError(f"{row.location}: conversations[0].value must be a string, got {type(question).__name__}")
    question = question.replace(DEFAULT_IMAGE_TOKEN, "").strip()
    prompt, images = question, ()
    if "image" in row.data:
        images = (ImageRef(path=os.path.join(os.path.expanduser(args.image_folder), row.text("image"))),)
        prompt = f"{DEFAULT_IMAGE_TOKEN}\n{question}"
    if args.single_pred_prompt:
        question, prompt = f"{question}\n{SINGLE_PRED_PROMPT}", f"{prompt}\n{SINGLE_PRED_PROMPT}"
    return [Item({"question_id": question_id, "prompt": prompt}, question, images)]


TASK = Task(
    description=__doc__, read_questions=read_json_list, to_items=science_items, max_new_tokens=1024,
    add_arguments=add_arguments,
)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
