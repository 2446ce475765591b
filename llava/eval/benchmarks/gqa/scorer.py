"""GQA accuracy of a predictions file (the accuracy part of GQA's official `eval/eval.py`).

LLaVA runs `cd playground/data/eval/gqa/data && python eval/eval.py --tier testdev_balanced`; the same here:

    python -m llava.eval.benchmarks.gqa.scorer --data-dir playground/data/eval/gqa/data --tier testdev_balanced

reads `<data-dir>/<tier>_questions.json` (`{question id: {"answer", "types": {"structural", "semantic"},
"isBalanced", ...}}`) and `<data-dir>/<tier>_predictions.json` (from `llava.eval.benchmarks.gqa.convert`).
Over the balanced questions that have a prediction: accuracy (prediction == answer, exactly), binary /
open accuracy (open = structural type "query"), and accuracy per structural and per semantic type.
Not computed (they need the scene graphs, choices or attention files): consistency, validity,
plausibility, distribution, grounding; nor accuracy per question length / reasoning steps.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish, qid,
                                   ratio, read_json)


def _acc(scores: list[int]) -> dict:
    return {"accuracy": 100.0 * ratio(sum(scores), len(scores)) if scores else None, "questions": len(scores)}


def score_gqa(questions: dict[str, dict], predictions: dict[str, str]) -> dict:
    """Scores over balanced questions with a prediction (percentages); `missing` counts the others."""
    overall, by_kind = [], defaultdict(list)
    by_structural, by_semantic = defaultdict(list), defaultdict(list)
    balanced = missing = 0
    for question_id, question in questions.items():
        if not question.get("isBalanced", True):
            continue
        balanced += 1
        if question_id not in predictions:
            missing += 1
            continue
        score = int(predictions[question_id] == question["answer"])
        overall.append(score)
        types = question.get("types") or {}
        if "structural" in types:
            by_structural[types["structural"]].append(score)
            by_kind["open" if types["structural"] == "query" else "binary"].append(score)
        if "semantic" in types:
            by_semantic[types["semantic"]].append(score)
    if not overall:
        raise ScoringInputError(f"none of the {balanced} balanced questions has a prediction")
    extra = len(set(predictions) - set(questions))
    result = {"benchmark": "gqa", **_acc(overall), "balanced_questions": balanced, "missing": missing,
              "predictions_without_question": extra}
    for kind in ("binary", "open"):
        if by_kind[kind]:
            result[kind] = _acc(by_kind[kind])
    if by_structural:
        result["per_structural_type"] = {t: _acc(s) for t, s in sorted(by_structural.items())}
    if by_semantic:
        result["per_semantic_type"] = {t: _acc(s) for t, s in sorted(by_semantic.items())}
    return result


def load_predictions(path: str) -> dict[str, str]:
    data = read_json(path)
    if not isinstance(data, list) or any(not isinstance(p, dict) or not {"questionId", "prediction"} <= p.keys()
                                         for p in data):
        raise ScoringInputError(f"{path}: expected [{{'questionId': ..., 'prediction': ...}}, ...]")
    return {qid(p["questionId"]): p["prediction"] for p in data}


def load_questions(path: str) -> dict[str, dict]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ScoringInputError(f"{path}: expected GQA's {{question id: question}} layout")
    return {qid(k): v for k, v in data.items()}


def summary_line(result: dict) -> str:
    line = f"GQA: accuracy {result['accuracy']:.2f}% over {result['questions']} questions"
    kinds = [f"{k} {result[k]['accuracy']:.2f}%" for k in ("binary", "open") if k in result]
    if kinds:
        line += f" ({', '.join(kinds)})"
    if result["missing"]:
        line += f"; {result['missing']} balanced questions have no prediction"
    return line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="testdev_balanced")
    parser.add_argument("--data-dir", default=".", help="directory of the question / prediction files (default: .)")
    parser.add_argument("--questions", default="{tier}_questions.json", help="relative to --data-dir")
    parser.add_argument("--predictions", default="{tier}_predictions.json", help="relative to --data-dir")
    add_result_json_arg(parser, "<predictions without .json>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    questions_path = os.path.join(args.data_dir, args.questions.format(tier=args.tier))
    predictions_path = os.path.join(args.data_dir, args.predictions.format(tier=args.tier))
    try:
        result = score_gqa(load_questions(questions_path), load_predictions(predictions_path))
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(questions_file=questions_path, predictions_file=predictions_path)
    return finish(summary_line(result), result, args.result_json or default_result_path(predictions_path))


if __name__ == "__main__":
    sys.exit(main())
