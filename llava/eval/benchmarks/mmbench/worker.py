r"""MMBench / MMBench-CN answers (the official TSV: one row per question, its image as base64).

    python -m llava.eval.benchmarks.mmbench.worker --model-path PATH \
        --question-file ./playground/data/eval/mmbench/mmbench_dev_20230712.tsv \
        --answers-file A.jsonl --single-pred-prompt [--lang cn] [--all-rounds] --temperature 0 \
        --conv-mode vicuna_v1 [DART flags]

The prompt is the hint (if any), the question and the options "A. ...", one per line. With --all-rounds a
question is asked once per option, the options rotated by one each round (MMBench's circular evaluation);
answer lines carry `round_id`, `options` and `option_char` for the submission converter.
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.core.prompt_texts import OPTION_PROMPT_CN
from llava.eval.core.common import Task, main as run_main
from llava.eval.core.questions import ImageRef, Item, QuestionFileError, Row, read_tsv

OPTION_LETTERS = ("A", "B", "C", "D")
SINGLE_PRED_PROMPT = {
    "en": "Answer with the option's letter from the given choices directly.",
    "cn": OPTION_PROMPT_CN,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-rounds", action="store_true", help="ask once per rotation of the options")
    parser.add_argument("--single-pred-prompt", action="store_true", help="ask for the option letter only")
    parser.add_argument("--lang", default="en", choices=sorted(SINGLE_PRED_PROMPT), help="language of that request")


def read_mmbench(path: str) -> list[Row]:
    return read_tsv(path, required_columns=("index", "question", "image", "A", "B"))


def options_of(row: Row) -> list[str]:
    """Options A, B, ... up to the first empty one (LLaVA stops there too)."""
    options = []
    for letter in OPTION_LETTERS:
        value = row.data.get(letter)
        if value is None:
            break
        options.append(value)
    return options


def _question_id(row: Row) -> int | str:
    """MMBench's `index` column; an int, as pandas reads it and the submission converter matches it."""
    index = row.data["index"]
    if index is None:
        raise QuestionFileError(f"{row.location}: empty 'index'")
    try:
        return int(index)
    except ValueError:
        return index


def mmbench_items(row: Row, args: argparse.Namespace) -> list[Item]:
    question_id = _question_id(row)
    question = row.data["question"] or ""
    if row.data.get("hint") is not None:
        question = f"{row.data['hint']}\n{question}"
    options = options_of(row)
    letters = list(OPTION_LETTERS[: len(options)])
    image = ImageRef(base64=row.data["image"] or "")
    items = []
    for round_id in range(len(options) if args.all_rounds else 1):
        # The letters A, B, ... stay in place while the option texts rotate; option_char[i] is the original
        # letter of the option shown as the i-th letter, which the converter maps the prediction back with.
        prompt = question + "".join(f"\n{letter}. {option}" for letter, option in zip(OPTION_LETTERS, options))
        text = f"{prompt}\n{SINGLE_PRED_PROMPT[args.lang]}" if args.single_pred_prompt else prompt
        record = {"question_id": question_id, "round_id": round_id, "prompt": prompt,
                  "options": list(options), "option_char": list(letters)}
        items.append(Item(record, text, (image,)))
        options, letters = options[1:] + options[:1], letters[1:] + letters[:1]
    return items


TASK = Task(
    description=__doc__, read_questions=read_mmbench, to_items=mmbench_items,
    key_fields=("question_id", "round_id"), max_new_tokens=1024, add_arguments=add_arguments,
)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
