r"""AI2D test answers, from the release's own files (llava.eval.benchmarks.ai2d.release).

    python -m llava.eval.benchmarks.ai2d.worker --model-path PATH \
        --question-file ./playground/data/eval/ai2d/ai2d_test_ids.csv \
        --image-folder ./playground/data/eval/ai2d \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [--questions-folder DIR] [DART flags]

--question-file is the split (ai2d_test_ids.csv); each test image's questions come from
<questions-folder>/<id>.png.json (default: questions/ beside the csv), its image from <image-folder>/images/
(abc_images/ for an abcLabel question). The prompt is lmms-eval's `ai2d` task for LLaVA models (default
lmms_eval_specific_kwargs, prompt_format "mcq"; lmms_eval/tasks/ai2d/utils.py `ai2d_doc_to_text`):

    <question>\nA. <option>\nB. <option>...\nAnswer with the option's letter from the given choices directly.

at most 16 new tokens (its generation_kwargs). One answer line per question, `question_id` = its questionId
("1024.png-0"); `llava.eval.benchmarks.ai2d.scorer` scores them. Each question is asked once, options in the
release's order: AI2D is not scored circularly (lmms-eval's task and the release have no rotations; MMBench's
circular evaluation is MMBench's own).
"""

from __future__ import annotations

import argparse
import os
import string
import sys

from llava.data.questions import OPTION_PROMPT
from llava.eval.benchmarks.ai2d.release import (Question, default_questions_folder, image_path, questions_of,
                                                read_test_ids, warn_missing)
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, Row


def ai2d_prompt(question: Question) -> str:
    """lmms-eval's mcq prompt: the question, one "A. option" line per option, the letter instruction."""
    options = "\n".join(f"{string.ascii_uppercase[i]}. {o}" for i, o in enumerate(question.options))
    return f"{question.question}\n{options}\n{OPTION_PROMPT}"


def read_ai2d(path: str) -> list[Row]:
    """One row per test image (the csv's lines); its questions are read per row, where the flags are known."""
    return [Row(location, {"image_id": image_id}) for location, image_id in read_test_ids(path)]


def ai2d_items(row: Row, args: argparse.Namespace) -> list[Item]:
    question_file = os.path.expanduser(args.question_file)
    folder = os.path.expanduser(args.questions_folder or default_questions_folder(question_file))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"questions folder not found: {folder} (AI2D's ai2d/questions/; --questions-folder)")
    questions = questions_of(row.data["image_id"], folder)
    if questions is None:
        warn_missing([f"{row.data['image_id']} ({row.location})"], folder)
        return []
    return [Item({"question_id": q.question_id, "prompt": ai2d_prompt(q)}, ai2d_prompt(q),
                 (ImageRef(path=image_path(os.path.expanduser(args.image_folder), q)),)) for q in questions]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--questions-folder", default=None,
                        help="AI2D's questions/ folder (default: questions/ beside --question-file)")


TASK = Task(description=__doc__, read_questions=read_ai2d, to_items=ai2d_items, max_new_tokens=16,
            num_workers=4, add_arguments=add_arguments)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
