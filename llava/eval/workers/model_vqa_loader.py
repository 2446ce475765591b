r"""Short answers for the VQA-style benchmarks (TextVQA, POPE, MME, GQA, VQAv2, VizWiz, SEED), with a
DataLoader preparing images and prompts in worker processes while the model generates (as LLaVA's).

    python -m llava.eval.workers.model_vqa_loader --model-path PATH --question-file Q.jsonl --image-folder DIR \
        --answers-file A.jsonl --conv-mode vicuna_v1 --temperature 0 \
        --sparse --pruned_layer 2 --reduction_ratio 0.778 --max_num_trunction 128 \
        --pivot_image_token 4 --pivot_text_token 4 [--is_textvqa] [--num-chunks N --chunk-idx K]

Question lines: {"question_id", "image", "text", ...}. See `llava.eval.core.common` for the shared flags.
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.core.common import Task, main as run_main
from llava.eval.workers.model_vqa import vqa_items
from llava.eval.core.questions import read_jsonl

OCR_LINE_PREFIX = "Reference OCR token:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--is_textvqa", action="store_true",
                        help="TextVQA on LLaVA-1.6: leave the OCR-token line out of the prompt (DART's setting)")


def textvqa_text(text: str, model_config, args: argparse.Namespace) -> str:
    """The DART release evaluates LLaVA-1.6 on TextVQA without the "Reference OCR token: ..." line
    (following haotian-liu/LLaVA#1326); LLaVA-1.5 keeps it. LLaVA-1.6 is told apart by its anyres image
    preprocessing (DART tests for '1.6' in the checkpoint name). The release drops line 2 of 3 by position;
    dropping it by its prefix is the same on TextVQA and leaves questions without an OCR line intact."""
    if not args.is_textvqa or not str(getattr(model_config, "image_aspect_ratio", "")).startswith("anyres"):
        return text
    return "\n".join(line for line in text.split("\n") if not line.startswith(OCR_LINE_PREFIX))


TASK = Task(
    description=__doc__,
    read_questions=read_jsonl,
    to_items=vqa_items,
    max_new_tokens=128,
    num_workers=4,
    add_arguments=add_arguments,
    model_text=textvqa_text,
)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
