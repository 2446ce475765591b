r"""VQAv2 test-dev / test submission file for the EvalAI server (LLaVA's `scripts/convert_vqav2_for_submission.py`).

    python -m llava.eval.benchmarks.vqav2.convert --split llava_vqav2_mscoco_test-dev2015 --ckpt llava-v1.5-13b \
        [--dir ./playground/data/eval/vqav2]

reads `<dir>/answers/<split>/<ckpt>/merge.jsonl` and the full test question list
`<dir>/llava_vqav2_mscoco_test2015.jsonl` (the server wants an answer for every test question; those not in
the answers get ""), and writes `<dir>/answers_upload/<split>/<ckpt>.json`:
`[{"question_id": int, "answer": EvalAI-normalized text}, ...]`. Unparseable answer lines are counted and
skipped, as LLaVA does.
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.core.m4c_evaluator import EvalAIAnswerProcessor
from llava.eval.core.scoring_io import ScoringInputError, fail, index_by_qid, qid, read_answers, read_jsonl, write_json


def convert(answers: list[dict], test_questions: list[dict]) -> tuple[list[dict], int]:
    """(submission rows in test-question order, number of test questions without an answer)."""
    processor = EvalAIAnswerProcessor()
    by_id, _ = index_by_qid(answers)
    rows, missing = [], 0
    for question in test_questions:
        ans = by_id.get(qid(question["question_id"]))
        missing += ans is None
        rows.append({"question_id": question["question_id"], "answer": "" if ans is None else processor(ans["text"])})
    return rows, missing


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="./playground/data/eval/vqav2")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", required=True)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    src = os.path.join(args.dir, "answers", args.split, args.ckpt, "merge.jsonl")
    test_split = os.path.join(args.dir, "llava_vqav2_mscoco_test2015.jsonl")
    dst = os.path.join(args.dir, "answers_upload", args.split, f"{args.ckpt}.json")
    bad_lines: list[int] = []
    try:
        answers = read_answers(src, bad_lines)
        rows, missing = convert(answers, read_jsonl(test_split))
        write_json(dst, rows, indent=None)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    print(f"VQAv2: {len(answers)} answers, {len(rows)} test questions ({missing} without an answer, written as \"\"), "
          f"{len(bad_lines)} unreadable lines -> {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
