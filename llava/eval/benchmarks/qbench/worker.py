r"""Q-Bench A1 (LLVisionQA) answers: llvisionqa_{dev,test}.json, a JSON list of {img_path, question,
candidates, correct_ans (dev only), type, concern}.

    python -m llava.eval.benchmarks.qbench.worker --model-path PATH \
        --questions-file ./playground/data/eval/qbench/llvisionqa_dev.json \
        --image-folder ./playground/data/eval/qbench/images_llvisionqa/ \
        --answers-file A.jsonl --conv-mode vicuna_v1 --lang en|zh [DART flags]

The prompt is LLaVA's: the question, an instruction to choose ("Choose between one of the options as
follows:" in English; Q-Bench-zh's "在下列选项中选择一个:", after a backslash and no line break as in LLaVA's
worker, so that the numbers compare with LLaVA-1.5's published ones), then "A. <candidate>" lines; at most
1024 new tokens. An answer's `question_id` is the entry's position in the file (entries have no id);
`llava.eval.benchmarks.qbench.scorer` scores the answers and writes the file Q-Bench's authors take for the test split.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.core.prompt_texts import QBENCH_CHOOSE, qbench_prompt
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, QuestionFileError, Row, read_json_list_by_position

OPTION_LETTERS = ("A", "B", "C", "D")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--questions-file", dest="question_file", default=argparse.SUPPRESS,
                        help="LLaVA's spelling of --question-file")
    parser.add_argument("--lang", default="en", choices=sorted(QBENCH_CHOOSE),
                        help="en: Q-Bench; zh: Q-Bench-zh (the Chinese instruction)")


def candidates_of(row: Row) -> list[str]:
    row.require("candidates")
    candidates = row.data["candidates"]
    if not isinstance(candidates, list) or not 1 <= len(candidates) <= len(OPTION_LETTERS) \
            or not all(isinstance(c, str) for c in candidates):
        raise QuestionFileError(f"{row.location}: 'candidates' must be a list of 1-{len(OPTION_LETTERS)} strings")
    return candidates


def qbench_items(row: Row, args: argparse.Namespace) -> list[Item]:
    row.require("img_path", "question")
    text = qbench_prompt(row.text("question"), candidates_of(row), args.lang)
    image = ImageRef(path=os.path.join(os.path.expanduser(args.image_folder), row.text("img_path")))
    return [Item({"question_id": row.data["question_id"], "prompt": text}, text, (image,))]


TASK = Task(description=__doc__, read_questions=read_json_list_by_position, to_items=qbench_items,
            max_new_tokens=1024, add_arguments=add_arguments)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
