r"""ChartQA answers, from the release's question files as they are (`layout`: JSON lists of
{imgname, query, label}).

    python -m llava.eval.benchmarks.chartqa.worker --model-path PATH \
        --question-file "./playground/data/eval/chartqa/ChartQA Dataset/test" \
        --image-folder "./playground/data/eval/chartqa/ChartQA Dataset/test/png" \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags]

--question-file is the split folder (both question sets: test_human.json, then test_augmented.json, as
lmms-eval's lmms-lab/ChartQA concatenates them) or one of its two files. The prompt is lmms-eval's for every
model but Qwen-VL (lmms_eval/tasks/chartqa/chartqa.yaml, default: no pre-prompt, post-prompt
"\nAnswer the question with a single word."; its first version, January 2024, had "using a single word or
phrase"), at most 16 new tokens as there. Each answer line carries `question_id` "<set>/<position>"
("human/0"), the `set` it came from and the `prompt`; `llava.eval.benchmarks.chartqa.scorer` scores them.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.data.charts import CHART_PROMPT
from llava.eval.benchmarks.chartqa.layout import question_files, question_id
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, Row, read_json_list


def read_chartqa(path: str) -> list[Row]:
    """The questions of one file, or of both files of a split folder (human first), each with its
    `question_id` and `set`."""
    rows = []
    for question_set, file in question_files(path):
        rows += [Row(row.location, {**row.data, "question_id": question_id(question_set, k), "set": question_set})
                 for k, row in enumerate(read_json_list(file))]
    return rows


def chartqa_items(row: Row, args: argparse.Namespace) -> list[Item]:
    text = f"{row.text('query')}\n{CHART_PROMPT}"
    image = ImageRef(path=os.path.join(os.path.expanduser(args.image_folder), row.text("imgname")))
    return [Item({"question_id": row.data["question_id"], "prompt": text, "set": row.data["set"]}, text, (image,))]


TASK = Task(description=__doc__, read_questions=read_chartqa, to_items=chartqa_items, max_new_tokens=16,
            num_workers=4)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
