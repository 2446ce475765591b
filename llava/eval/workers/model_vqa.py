r"""Open-ended answers, one question per JSONL line (LLaVA-Bench in-the-wild, MM-Vet).

    python -m llava.eval.workers.model_vqa --model-path PATH --question-file Q.jsonl --image-folder DIR \
        --answers-file A.jsonl --temperature 0 --conv-mode vicuna_v1 [DART flags: --sparse ...]

Question lines: {"question_id", "image", "text", ...}; answer lines: {"question_id", "prompt", "text",
"answer_id", "model_id", "metadata"}. See `llava.eval.core.common` for the shared flags.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, Row, read_jsonl


def vqa_items(row: Row, args: argparse.Namespace) -> list[Item]:
    """LLaVA's question line: the image in front of the question text, which is also the recorded prompt."""
    row.require("question_id", "image", "text")
    question_id, image_file, text = row.key("question_id"), row.text("image"), row.text("text")
    image = ImageRef(path=os.path.join(os.path.expanduser(args.image_folder), image_file))
    return [Item({"question_id": question_id, "prompt": text}, text, (image,))]


TASK = Task(description=__doc__, read_questions=read_jsonl, to_items=vqa_items, max_new_tokens=1024)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
