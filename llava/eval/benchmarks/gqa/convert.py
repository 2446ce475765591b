r"""Answers JSONL -> GQA predictions JSON (LLaVA's `scripts/convert_gqa_for_eval.py`).

    python -m llava.eval.benchmarks.gqa.convert --src answers/merge.jsonl \
        --dst playground/data/eval/gqa/data/testdev_balanced_predictions.json

Writes `[{"questionId": ..., "prediction": ...}]`, the prediction being the answer with trailing periods
removed and lower-cased (LLaVA's rule), which the official `eval/eval.py` and `llava.eval.benchmarks.gqa.scorer` compare
to the gold answer exactly.
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.core.scoring_io import ScoringInputError, fail, read_answers, write_json


def gqa_prediction(text: str) -> str:
    return text.rstrip(".").lower()


def convert(answers: list[dict]) -> list[dict]:
    # GQA question ids are strings in the official files; str() keeps them so (and fixes ints).
    return [{"questionId": str(a["question_id"]), "prediction": gqa_prediction(a["text"])} for a in answers]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="answers JSONL")
    parser.add_argument("--dst", required=True, help="predictions JSON to write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        predictions = convert(read_answers(args.src))
        write_json(args.dst, predictions, indent=None)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    print(f"GQA: wrote {len(predictions)} predictions to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
