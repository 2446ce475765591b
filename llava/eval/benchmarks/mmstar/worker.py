r"""MMStar answers, from the release's mmstar.parquet (Lin-Chen/MMStar on the hub; needs pyarrow).

    python -m llava.eval.benchmarks.mmstar.worker --model-path PATH \
        --question-file ./playground/data/eval/MMStar/mmstar.parquet \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags]

The parquet is the file the hub dataset's config names (split "val", 1,500 rows: index, question, image {bytes,
path}, answer, category, l2_category, meta_info {source, split, image_path}) and what lmms-eval's `mmstar` task
and MMStar's README load; images are embedded, so no --image-folder. A question carries its options inline
("...?\nOptions: A: ..., B: ..., C: ..., D: ..."). The same repository's MMStar.tsv (the table MMStar's
VLMEvalKit-based eval code downloads) is not read here.

The prompt is lmms-eval's `mmstar` task for LLaVA models (lmms_eval/tasks/mmstar/utils.py `mmstar_doc_to_text`
with _default_template_yaml's default post_prompt): the question stripped, " Please answer yes or no." removed,
then "\nAnswer with the option's letter from the given choices directly" (no full stop, as there). At most 32 new
tokens (MMStar's eval README; lmms-eval sets none, and the rule only reads the start of the response).
`question_id` is the row's `index`; `llava.eval.benchmarks.mmstar.scorer` scores the answers. Not circular.
"""

from __future__ import annotations

import argparse
import base64
import sys

from llava.eval.benchmarks.mmstar.scorer import read_mmstar
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, QuestionFileError, Row
from llava.eval.core.scoring_io import ScoringInputError

POST_PROMPT = "\nAnswer with the option's letter from the given choices directly"
YES_NO = " Please answer yes or no."  # lmms-eval drops it wherever it adds its own post prompt


def mmstar_prompt(question: str) -> str:
    return question.strip().replace(YES_NO, "") + POST_PROMPT


def read_questions(path: str) -> list[Row]:
    try:
        return [Row(f"{path}[{i}]", row) for i, row in enumerate(read_mmstar(path, images=True))]
    except ScoringInputError as exc:
        raise QuestionFileError(str(exc)) from None


def mmstar_items(row: Row, args: argparse.Namespace) -> list[Item]:
    image = row.data["image"]
    if not isinstance(image, dict) or not isinstance(image.get("bytes"), bytes) or not image["bytes"]:
        raise QuestionFileError(f"{row.location}: 'image' must hold the image's bytes ({{bytes, path}})")
    text = mmstar_prompt(row.text("question"))
    return [Item({"question_id": row.key("index"), "prompt": text}, text,
                 (ImageRef(base64=base64.b64encode(image["bytes"]).decode()),))]


TASK = Task(description=__doc__, read_questions=read_questions, to_items=mmstar_items, max_new_tokens=32,
            num_workers=4)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
