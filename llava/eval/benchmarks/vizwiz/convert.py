r"""VizWiz-VQA test submission file for the EvalAI server (LLaVA's `scripts/convert_vizwiz_for_submission.py`).

    python -m llava.eval.benchmarks.vizwiz.convert \
        --annotation-file playground/data/eval/vizwiz/llava_test.jsonl \
        --result-file playground/data/eval/vizwiz/answers/llava-v1.5-13b.jsonl \
        --result-upload-file playground/data/eval/vizwiz/answers_upload/llava-v1.5-13b.json

Writes `[{"image": "VizWiz_test_00000000.jpg", "answer": ...}]` in question-file order, each answer
normalized by `EvalAIAnswerProcessor` (lower case, punctuation, articles, number words, contractions), so
the model's "Unanswerable" (the LLaVA prompt asks for it when the image is insufficient) becomes the
server's "unanswerable". That is LLaVA's only VizWiz-specific rule; there is no keyword mapping.
Every question needs an answer (LLaVA asserts it); a missing one is an error naming the count.
"""

from __future__ import annotations

import argparse
import sys

from llava.eval.core.m4c_evaluator import EvalAIAnswerProcessor
from llava.eval.core.scoring_io import ScoringInputError, fail, index_by_qid, qid, read_answers, read_jsonl, write_json


def convert(answers: list[dict], questions: list[dict]) -> list[dict]:
    processor = EvalAIAnswerProcessor()
    by_id, _ = index_by_qid(answers)
    missing = [q["question_id"] for q in questions if qid(q["question_id"]) not in by_id]
    if missing:
        raise ScoringInputError(f"{len(missing)} of {len(questions)} VizWiz questions have no answer "
                                f"(first: {missing[0]!r}); the server needs all of them")
    return [{"image": q["image"], "answer": processor(by_id[qid(q["question_id"])]["text"])} for q in questions]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="the question file, llava_test.jsonl")
    parser.add_argument("--result-file", required=True, help="answers JSONL")
    parser.add_argument("--result-upload-file", required=True, help="submission JSON to write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bad_lines: list[int] = []
    try:
        answers = read_answers(args.result_file, bad_lines)
        rows = convert(answers, read_jsonl(args.annotation_file))
        write_json(args.result_upload_file, rows, indent=None)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    unanswerable = sum(r["answer"] == "unanswerable" for r in rows)
    print(f"VizWiz: {len(rows)} answers ({unanswerable} unanswerable), {len(bad_lines)} unreadable lines "
          f"-> {args.result_upload_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
