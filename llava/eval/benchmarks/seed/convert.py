r"""SEED-Bench accuracy per question type and the leaderboard upload file (LLaVA's
`scripts/convert_seed_for_submission.py`).

    python -m llava.eval.benchmarks.seed.convert \
        --annotation-file playground/data/eval/seed_bench/SEED-Bench.json \
        --result-file playground/data/eval/seed_bench/answers/llava-v1.5-13b/merge.jsonl \
        --result-upload-file playground/data/eval/seed_bench/answers_upload/llava-v1.5-13b.jsonl [--result-json PATH]

A question is correct when the answer text equals the annotated option letter exactly ("A"; not "A." or
"a"). Every annotated question counts; one without an answer is wrong. Reported: accuracy per question
type over all questions (LLaVA's printout), overall, and over the image / video questions (`data_type`);
LLaVA-1.5's "SEED-Bench (image)" number is `image`. The upload file has one
`{"question_id", "prediction"}` line per answered question.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                   index_by_qid, qid, read_answers, read_json, write_jsonl)

logger = logging.getLogger(__name__)


def _acc(correct: int, total: int) -> dict:
    return {"accuracy": 100.0 * correct / total if total else None, "questions": total, "correct": correct}


def score_seed(data: dict, answers: list[dict]) -> dict:
    """Percent accuracies per question type, overall and per data type (image / video)."""
    type_names = {type_id: name for name, type_id in data.get("question_type", {}).items()}
    results, duplicates = index_by_qid(answers)
    per_type = defaultdict(lambda: [0, 0])
    per_data_type = defaultdict(lambda: [0, 0])
    missing = 0
    for question in data["questions"]:
        row = results.get(qid(question["question_id"]))
        missing += row is None
        hit = row is not None and row["text"] == question["answer"]
        for counter, key in ((per_type, question["question_type_id"]), (per_data_type, question.get("data_type"))):
            counter[key][0] += hit
            counter[key][1] += 1
    if not per_type:
        raise ScoringInputError("the annotation file has no questions")
    correct = sum(c for c, _ in per_type.values())
    total = sum(t for _, t in per_type.values())
    result = {"benchmark": "seed_bench", **_acc(correct, total), "missing": missing, "duplicates": duplicates,
              "per_type": {type_names.get(t, str(t)): _acc(*per_type[t]) for t in sorted(per_type)}}
    for data_type in ("image", "video"):
        result[data_type] = _acc(*per_data_type.get(data_type, (0, 0)))
    return result


def upload_lines(data: dict, answers: list[dict]) -> list[dict]:
    results, _ = index_by_qid(answers)
    return [{"question_id": q["question_id"], "prediction": results[qid(q["question_id"])]["text"]}
            for q in data["questions"] if qid(q["question_id"]) in results]


def load_annotations(path: str) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ScoringInputError(f"{path}: expected SEED-Bench's {{'questions': [...], 'question_type': {{...}}}}")
    for i, q in enumerate(data["questions"]):
        lacking = [k for k in ("question_id", "answer", "question_type_id") if k not in q]
        if lacking:
            raise ScoringInputError(f"{path}: question #{i + 1} lacks {', '.join(lacking)}")
    return data


def summary_line(result: dict) -> str:
    parts = [f"{k} {result[k]['accuracy']:.2f}%" for k in ("image", "video") if result[k]["accuracy"] is not None]
    line = f"SEED-Bench: accuracy {result['accuracy']:.2f}% over {result['questions']} questions"
    if parts:
        line += f" ({', '.join(parts)})"
    if result["missing"]:
        line += f"; {result['missing']} unanswered (counted wrong)"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True, help="SEED-Bench.json")
    parser.add_argument("--result-file", required=True, help="answers JSONL")
    parser.add_argument("--result-upload-file", default=None, help="JSONL for the leaderboard")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        data = load_annotations(args.annotation_file)
        answers = read_answers(args.result_file)
        result = score_seed(data, answers)
        if args.result_upload_file:
            write_jsonl(args.result_upload_file, upload_lines(data, answers))
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    if result["missing"]:
        logger.warning("%d SEED-Bench questions have no answer; they are left out of the upload file",
                       result["missing"])
    result.update(annotation_file=args.annotation_file, result_file=args.result_file,
                  upload_file=args.result_upload_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
