r"""InfographicVQA answers, from the official question file as the RRC releases it.

    python -m llava.eval.benchmarks.infovqa.worker --model-path PATH \
        --question-file ./playground/data/eval/infovqa/infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json \
        --image-folder ./playground/data/eval/infovqa/infographicsvqa_images \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags]

The question file (infographicsVQA_val_v1.0_withQT.json, infographicsVQA_test_v1.0.json) is {"dataset_name",
..., "data": [{"questionId", "question", "image_local_name", "image_url", "ocr_output_file", "answers",
"data_split", "answer_type", "evidence", "operation/reasoning"}]} (no answers in test); the image is
<image-folder>/<image_local_name>.

The prompt is lmms-eval's for LLaVA (lmms_eval/tasks/infovqa/_default_template_infovqa_yaml and utils.py:
pre_prompt "" + question + post_prompt "\nAnswer the question using a single word or phrase."), at most 32 new
tokens as there. An answer's `question_id` is the entry's `questionId`; `llava.eval.benchmarks.infovqa.scorer`
scores val by ANLS, `llava.eval.benchmarks.docvqa.convert` writes the test split's RRC submission file.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.benchmarks.docvqa.worker import MAX_NEW_TOKENS, question_items, read_rrc_questions
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import Item, Row


def infovqa_items(row: Row, args: argparse.Namespace) -> list[Item]:
    return question_items(row, os.path.join(os.path.expanduser(args.image_folder), row.text("image_local_name")))


TASK = Task(description=__doc__, read_questions=read_rrc_questions, to_items=infovqa_items,
            max_new_tokens=MAX_NEW_TOKENS, num_workers=4)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
