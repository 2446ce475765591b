"""LLaVA-Bench scores from a GPT review file (`llava.eval.benchmarks.llavabench.scorer`), by LLaVA's rule.

    python -m llava.eval.benchmarks.llavabench.summarize -f playground/data/eval/llava-bench-in-the-wild/reviews/MODEL.jsonl

Per category (conv, detail, complex) and over all questions: the mean of the judge's scores for the
reference answer and for the model's, and the relative score 100 * model mean / reference mean, rounded
to one decimal (LLaVA's number). As in LLaVA, a review whose scores could not be parsed counts with
(-1, -1); the summary says how many there were, so that they can be re-reviewed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

from llava.eval.core.scoring_io import ScoringInputError, add_result_json_arg, fail, finish, qid, read_jsonl

CATEGORY_PREFIX = "llava_bench_"


def summarize(reviews: list[dict], ignore: frozenset[str] = frozenset()) -> dict[str, dict]:
    """{category: {"relative", "reference", "model", "n"}}, with "all" over every review; the means are on
    the judge's 1-10 scale."""
    pairs: dict[str, list[list[float]]] = defaultdict(list)
    for review in reviews:
        if qid(review.get("question_id")) in ignore:
            continue
        pair = review["tuple"] if "tuple" in review else review["score"]
        if "category" in review:
            pairs[review["category"].removeprefix(CATEGORY_PREFIX)].append(pair)
        pairs["all"].append(pair)
    result = {}
    for category, scores in sorted(pairs.items()):
        reference = sum(p[0] for p in scores) / len(scores)
        model = sum(p[1] for p in scores) / len(scores)
        result[category] = {"relative": round(100 * model / reference, 1) if reference else None,
                            "reference": round(reference, 3), "model": round(model, 3), "n": len(scores)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--files", nargs="+", required=True, help="review JSONL files")
    parser.add_argument("-i", "--ignore", nargs="*", default=(), help="question ids to leave out")
    add_result_json_arg(parser, "REVIEWS.score.json next to each review file")
    args = parser.parse_args(argv)
    if args.result_json and len(args.files) > 1:
        return fail("--result-json takes one review file; with several, each gets REVIEWS.score.json")
    status = 0
    for path in args.files:
        try:
            reviews = read_jsonl(path)
            for i, review in enumerate(reviews, 1):
                if "tuple" not in review and "score" not in review:
                    raise ScoringInputError(f"{path}: review #{i} has no score pair (`tuple`)")
        except ScoringInputError as exc:
            status = fail(str(exc))
            continue
        if not reviews:
            status = fail(f"{path}: no reviews")
            continue
        scores = summarize(reviews, frozenset(map(qid, args.ignore)))
        unparsed = sum(1 for r in reviews if list(r.get("tuple", r.get("score"))) == [-1, -1])
        per_category = ", ".join(f"{k} {v['relative']}" for k, v in scores.items() if k != "all")
        name = os.path.splitext(os.path.basename(path))[0]
        summary = (f"LLaVA-Bench {name}: relative score {scores['all']['relative']} over "
                   f"{scores['all']['n']} reviews ({per_category}; model {scores['all']['model']:.2f} vs "
                   f"reference {scores['all']['reference']:.2f} of 10; {unparsed} unparsed)")
        result_json = args.result_json or os.path.splitext(path)[0] + ".score.json"
        finish(summary, {"scores": scores, "unparsed": unparsed}, result_json)
    return status


if __name__ == "__main__":
    sys.exit(main())
