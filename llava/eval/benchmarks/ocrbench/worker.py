r"""OCRBench answers (OCRBench.json: a JSON list of {dataset_name, id, image_path, question, answers, type}).

    python -m llava.eval.benchmarks.ocrbench.worker --model-path PATH \
        --question-file ./playground/data/eval/OCRBench/OCRBench/OCRBench.json \
        --image-folder ./playground/data/eval/OCRBench/OCRBench_Images \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags]

The prompt is the question and "Answer the question using a single word or phrase." (the DART release's
OCRBench worker), at most 128 new tokens. OCRBench's `id` repeats across its source datasets, so an answer's
`question_id` is the entry's position in the file; `llava.eval.benchmarks.ocrbench.scorer` scores by it.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.core.prompt_texts import SHORT_ANSWER_PROMPT
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, Row, read_json_list_by_position


def ocrbench_items(row: Row, args: argparse.Namespace) -> list[Item]:
    row.require("question", "image_path", "answers")
    text = f"{row.text('question')}\n{SHORT_ANSWER_PROMPT}"
    image = ImageRef(path=os.path.join(os.path.expanduser(args.image_folder), row.text("image_path")))
    return [Item({"question_id": row.data["question_id"], "prompt": text}, text, (image,))]


TASK = Task(description=__doc__, read_questions=read_json_list_by_position, to_items=ocrbench_items,
            max_new_tokens=128, num_workers=4)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
