r"""MMStar accuracy: overall, per core capability (category) and per sub-category (l2_category).

    python -m llava.eval.benchmarks.mmstar.scorer \
        --question-file playground/data/eval/MMStar/mmstar.parquet \
        --result-file playground/data/eval/MMStar/answers/MODEL.jsonl [--result-json PATH]

A response is right by MMStar's own rule (MMStar-Benchmark/MMStar eval/vlmeval/evaluate/mmstar.py, which
lmms-eval's mmstar/utils.py `exact_match` copied "from MMStar" and used until April 2026): response and answer
lower-cased, stripped, line breaks made spaces; right when the response's first character is the answer letter,
or it starts with "(" and the second is, or with "option " and the 8th is, or with "the answer is " and the 15th
is. Only the start counts: "B", "b)", "(B)", "Option B", "The answer is B" are B; "Answer: B" is A (its first
character); an empty response is wrong. (lmms-eval replaced this in April 2026 by a best-candidate letter
search, `_task_utils/mcq_extract.py`; the numbers of LLaVA-NeXT / LLaVA-OneVision and MMStar's leaderboard are
from this rule.)

Two aggregations, both written:
- `average` (the score): lmms-eval's `mmstar_aggregate_results`, the mean of the l2 categories' accuracies;
  a category's score is the mean of its l2 categories' accuracies. This is what lmms-eval reports.
- `final_score`: MMStar's own, right answers over all questions (and per category over its questions: 250
  each on the full set, where it divides by 250). On the full set the two differ a little, the l2 categories
  having different sizes.
Unanswered questions count as wrong. MMStar is not scored circularly (neither its code nor lmms-eval's rotates
options; circular evaluation is MMBench's). Multi-modal gain and leakage (MMStar's MG / ML, which need a run
without images and one of the language model alone) are not computed here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import (ScoringInputError, add_result_json_arg, default_result_path, fail, finish,
                                        check_known, index_by_qid, qid, read_numbered_answers)

QUESTION_FIELDS = ("index", "question", "answer", "category", "l2_category")
# MMStar's six core capabilities and their sub-categories, in its order (mmstar.py, lmms-eval's eval_type_dict).
CATEGORIES = {
    "coarse perception": ("image scene and topic", "image style & quality", "image emotion"),
    "fine-grained perception": ("object counting", "recognition", "localization"),
    "instance reasoning": ("single-instance reasoning", "cross-instance attribute reasoning",
                           "cross-instance relation reasoning"),
    "logical reasoning": ("code & sequence reasoning", "diagram reasoning", "common reasoning"),
    "science & technology": ("biology & chemistry & physics", "electronics & energy & mechanical eng.",
                             "geography & earth science & agriculture"),
    "math": ("geometry", "numeric commonsense and calculation", "statistical reasoning"),
}


def read_mmstar(path: str, images: bool = False) -> list[dict]:
    """The rows of mmstar.parquet (needs pyarrow): index, question, answer, category, l2_category (and the image
    struct {bytes, path} when `images`)."""
    if not os.path.isfile(path):
        raise ScoringInputError(f"file not found: {path}")
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ScoringInputError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid for a file that is not parquet
        raise ScoringInputError(f"{path}: not a parquet file ({exc})") from None
    wanted = QUESTION_FIELDS + (("image",) if images else ())
    lacking = [c for c in wanted if c not in schema.names]
    if lacking:
        raise ScoringInputError(f"{path}: no column(s) {', '.join(lacking)} (MMStar's mmstar.parquet has "
                                f"{', '.join(QUESTION_FIELDS)}, image, meta_info)")
    rows = pq.read_table(path, columns=list(wanted)).to_pylist()
    for i, row in enumerate(rows):
        bad = [c for c in QUESTION_FIELDS[1:] if not isinstance(row[c], str)]
        if bad or not isinstance(row["index"], int):
            raise ScoringInputError(f"{path}[{i}]: {', '.join(bad) or 'index'} must be "
                                    f"{'text' if bad else 'an integer'}")
    if not rows:
        raise ScoringInputError(f"{path}: no questions")
    return rows


def is_right(response: str, answer: str) -> bool:
    """MMStar's rule (module docstring)."""
    answer = answer.lower().strip().replace("\n", " ")
    predict = response.lower().strip().replace("\n", " ")
    if not predict:
        return False
    if predict[0] == answer:
        return True
    for prefix in ("(", "option ", "the answer is "):
        if predict.startswith(prefix) and len(predict) > len(prefix) and predict[len(prefix)] == answer:
            return True
    return False


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def score_mmstar(rows: list[dict], answers: list[dict]) -> dict:
    index, duplicates = index_by_qid(answers)
    by_l2: dict[tuple[str, str], list[float]] = defaultdict(list)
    missing = 0
    for row in rows:
        answer = index.get(qid(row["index"]))
        missing += answer is None
        by_l2[(row["category"], row["l2_category"])].append(float(answer is not None
                                                                  and is_right(answer["text"], row["answer"])))
    known = list(CATEGORIES)
    categories = [c for c in known if any(k[0] == c for k in by_l2)] + sorted({c for c, _ in by_l2} - set(known))
    per_category, per_l2 = {}, {}
    for category in categories:
        keys = [k for k in by_l2 if k[0] == category]
        order = CATEGORIES.get(category, ())
        keys.sort(key=lambda k: (order.index(k[1]) if k[1] in order else len(order), k[1]))
        scores = [s for k in keys for s in by_l2[k]]
        per_category[category] = {"score": 100 * _mean(_mean(by_l2[k]) for k in keys),
                                  "accuracy": 100 * _mean(scores), "correct": int(sum(scores)),
                                  "questions": len(scores)}
        for k in keys:
            per_l2[f"{category}/{k[1]}"] = {"accuracy": 100 * _mean(by_l2[k]), "correct": int(sum(by_l2[k])),
                                            "questions": len(by_l2[k])}
    everything = [s for scores in by_l2.values() for s in scores]
    return {
        "benchmark": "mmstar", "average": 100 * _mean(_mean(s) for s in by_l2.values()),
        "final_score": 100 * _mean(everything), "correct": int(sum(everything)), "questions": len(everything),
        "missing": missing, "duplicates": duplicates, "per_category": per_category, "per_l2_category": per_l2,
    }


def summary_line(result: dict) -> str:
    parts = ", ".join(f"{c} {v['score']:.2f}" for c, v in result["per_category"].items())
    line = (f"MMStar: average {result['average']:.2f}% (mean of {len(result['per_l2_category'])} l2 categories; "
            f"{parts}); over questions {result['final_score']:.2f}% ({result['correct']} of {result['questions']})")
    return line + (f"; {result['missing']} unanswered (counted wrong)" if result["missing"] else "")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question-file", required=True, help="mmstar.parquet (Lin-Chen/MMStar)")
    parser.add_argument("--result-file", required=True, help="answers JSONL (llava.eval.benchmarks.mmstar.worker)")
    add_result_json_arg(parser, "<result-file without .jsonl>.score.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows = read_mmstar(args.question_file)
        numbered = read_numbered_answers(args.result_file)
        answers = [row for _, row in numbered]
        check_known(args.result_file, numbered, {qid(r["index"]) for r in rows}, args.question_file)
        result = score_mmstar(rows, answers)
    except (ScoringInputError, OSError) as e:
        return fail(str(e))
    result.update(question_file=args.question_file, result_file=args.result_file)
    return finish(summary_line(result), result, args.result_json or default_result_path(args.result_file))


if __name__ == "__main__":
    sys.exit(main())
